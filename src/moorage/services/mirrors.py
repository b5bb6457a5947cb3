"""Mirror configuration service: create, change, read, sync-now, cancel, run history.

Input bodies have already passed the API's JSON schema; this module applies Quay's handler
rules in Quay's order, all inside one transaction (a failed request changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.auth.crypto import DecryptionFailure, FieldCipher
from moorage.db.engine import Database
from moorage.db.listen import notify
from moorage.db.models import (
    MirrorConfig,
    MirrorRun,
    RepoRole,
    Repository,
    RepositoryState,
    SyncStatus,
)
from moorage.db.models.mirror import MAX_SYNC_RETRIES, MIRRORS_DUE, new_txn
from moorage.db.queries.accounts import AccountQueries
from moorage.db.queries.mirrors import MirrorQueries
from moorage.db.queries.repositories import RepositoryQueries
from moorage.db.queries.repository_admin import RepositoryAdminQueries
from moorage.errors import Conflict, NotFound
from moorage.mirror.reference import parse_external_reference
from moorage.mirror.ssrf import SsrfGuard
from moorage.services import mirror_rules as rules
from moorage.services.audit import Actor, record

INVALID_USERNAME = "(invalid. please re-enter)"
CONFIG_SUBKEYS = ("verify_tls", "unsigned_images")
PROXY_KEYS = ("http_proxy", "https_proxy", "no_proxy")


@dataclass(frozen=True, slots=True)
class MirrorView:
    config: MirrorConfig
    username: str | None
    robot_username: str | None
    last_run: MirrorRun | None
    current_run: MirrorRun | None = None


class MirrorService:
    def __init__(
        self, db: Database, cipher: FieldCipher, ssrf: SsrfGuard, sparse_index: bool
    ) -> None:
        self.db = db
        self.cipher = cipher
        self.ssrf = ssrf
        self.sparse_index = sparse_index
        # Set by a worker in this process so that sync-now starts without waiting a poll.
        self.on_sync_now: Callable[[], None] | None = None

    # --- helpers ---------------------------------------------------------------------------
    async def _repo(self, session: AsyncSession, namespace: str, name: str) -> Repository:
        repo = await RepositoryQueries(session).get(namespace, name)
        if repo is None:
            raise NotFound("Not Found")
        return repo

    async def _config(self, session: AsyncSession, repo: Repository) -> MirrorConfig:
        config = await MirrorQueries(session).for_repository(repo.id, lock=True)
        if config is None:
            raise NotFound("Not Found")
        return config

    async def _unmirrored(self, session: AsyncSession, namespace: str, name: str) -> Repository:
        """The repository, which must exist (404) and have no mirror yet (409)."""
        repo = await self._repo(session, namespace, name)
        if await MirrorQueries(session).for_repository(repo.id) is not None:
            raise _exists(namespace, name)
        return repo

    async def _check_reference(self, value: str) -> str:
        reference = parse_external_reference(value)
        await self.ssrf.check(reference)
        return value

    def _seal(self, field: str, value: str | None) -> str | None:
        """Encrypt a credential (``None`` stays ``None``); refuse values whose encrypted form
        would not fit the column (a database error, i.e. a 500, on PostgreSQL otherwise)."""
        if value is None:
            return None
        column_type = MirrorConfig.__table__.c[field].type
        if isinstance(column_type, String) and column_type.length is not None:
            capacity = rules.sealed_capacity(column_type.length)
            if len(value.encode()) > capacity:
                raise rules.detail_error(f"{field} must be at most {capacity} bytes long")
        return self.cipher.encrypt(value)

    async def _grant_robot(
        self, session: AsyncSession, repo: Repository, robot_username: str, actor: Actor
    ) -> int:
        accounts = AccountQueries(session)
        rules.robot_namespace(robot_username)
        # A name no account can have (control characters) is not looked up: PostgreSQL refuses
        # NUL bytes in a query parameter.
        found = (
            None if rules.has_control(robot_username) else await accounts.by_name(robot_username)
        )
        robot = rules.check_robot(found, robot_username, repo.namespace)
        role = await accounts.repo_role(repo.id, robot.id)
        if role not in {RepoRole.WRITE, RepoRole.ADMIN}:
            await accounts.set_repo_role(repo.id, robot.id, RepoRole.WRITE)
            record(
                session,
                "change_repo_permission",
                actor,
                namespace=repo.namespace,
                repository=repo.name,
                metadata={"username": robot_username, "role": "write"},
            )
        return robot.id

    # --- create ----------------------------------------------------------------------------
    async def create(self, namespace: str, name: str, body: dict[str, Any], actor: Actor) -> None:
        try:
            await self._create(namespace, name, body, actor)
        except IntegrityError as exc:
            # A concurrent POST for the same repository committed first (unique repository_id,
            # or the robot's permission row): the same answer as when it had been seen.
            raise _exists(namespace, name) from exc

    async def _create(self, namespace: str, name: str, body: dict[str, Any], actor: Actor) -> None:
        # Quay's order of answers (404, 409, then the source), but the source's DNS lookup runs
        # outside the writing transaction: a slow resolver must not hold the database's write
        # lock (SQLite) while it answers. 404/409 are checked again inside the transaction.
        async with self.db.transaction(readonly=True) as session:
            await self._unmirrored(session, namespace, name)
        reference = await self._check_reference(body["external_reference"])
        async with self.db.transaction() as session:
            repo = await self._unmirrored(session, namespace, name)
            architectures = rules.check_architectures(
                body.get("architecture_filter"), self.sparse_index
            )
            start = rules.parse_start_date(body["sync_start_date"])
            rule_value = rules.check_rule_value(body["root_rule"])
            robot_id = await self._grant_robot(session, repo, body["robot_username"], actor)
            await MirrorQueries(session).add(
                MirrorConfig(
                    repository_id=repo.id,
                    is_enabled=body.get("is_enabled", True),
                    internal_robot_id=robot_id,
                    external_reference=reference,
                    external_registry_username=self._seal(
                        "external_registry_username", body.get("external_registry_username") or None
                    ),
                    external_registry_password=self._seal(
                        "external_registry_password", body.get("external_registry_password") or None
                    ),
                    external_registry_config=body.get("external_registry_config") or {},
                    architecture_filter=architectures if "architecture_filter" in body else [],
                    rule_value=rule_value,
                    sync_interval=body["sync_interval"],
                    sync_start_date=start,
                    sync_retries_remaining=MAX_SYNC_RETRIES,
                    sync_status=int(SyncStatus.NEVER_RUN),
                    sync_transaction_id=new_txn(),
                    skopeo_timeout=body.get("skopeo_timeout_interval", 300),
                )
            )
            await RepositoryAdminQueries(session).set_state(repo.id, int(RepositoryState.MIRROR))
            self._log_change(session, actor, repo, "external_reference", reference)

    def _log_change(
        self, session: AsyncSession, actor: Actor, repo: Repository, changed: str, to: Any
    ) -> None:
        record(
            session,
            "repo_mirror_config_changed",
            actor,
            namespace=repo.namespace,
            repository=repo.name,
            metadata={"changed": changed, "to": to},
        )

    # --- update ----------------------------------------------------------------------------
    async def update(self, namespace: str, name: str, body: dict[str, Any], actor: Actor) -> None:
        reference: str | None = None
        if "external_reference" in body:
            # Resolved before the row is locked (see _create); 404s still come first.
            async with self.db.transaction(readonly=True) as session:
                repo = await self._repo(session, namespace, name)
                if await MirrorQueries(session).for_repository(repo.id) is None:
                    raise NotFound("Not Found")
            reference = await self._check_reference(body["external_reference"])
        async with self.db.transaction() as session:
            repo = await self._repo(session, namespace, name)
            config = await self._config(session, repo)
            changes = await self._validate_update(session, repo, body, actor, reference)
            for field, (value, logged) in changes.items():
                setattr(config, field, value)
                self._log_change(session, actor, repo, logged[0], logged[1])
            self._merge_registry_config(session, actor, repo, config, body)
            await session.flush()

    async def _validate_update(
        self,
        session: AsyncSession,
        repo: Repository,
        body: dict[str, Any],
        actor: Actor,
        reference: str | None,
    ) -> dict[str, tuple[Any, tuple[str, Any]]]:
        """Check every present key before anything changes; return column → (value, log).

        ``reference`` is the body's external_reference, already checked by the caller.
        """
        out: dict[str, tuple[Any, tuple[str, Any]]] = {}
        if "is_enabled" in body:
            out["is_enabled"] = (body["is_enabled"], ("is_enabled", body["is_enabled"]))
        if reference is not None:
            out["external_reference"] = (reference, ("external_reference", reference))
        if "sync_start_date" in body:
            start = rules.parse_start_date(body["sync_start_date"])
            out["sync_start_date"] = (start, ("sync_start_date", body["sync_start_date"]))
        if "sync_interval" in body:
            out["sync_interval"] = (body["sync_interval"], ("sync_interval", body["sync_interval"]))
        if "skopeo_timeout_interval" in body:
            value = body["skopeo_timeout_interval"]
            out["skopeo_timeout"] = (value, ("skopeo_timeout_interval", value))
        if "architecture_filter" in body:
            archs = rules.check_architectures(body["architecture_filter"], self.sparse_index) or []
            out["architecture_filter"] = (archs, ("architecture_filter", archs))
        out.update(self._credential_changes(body))
        if "root_rule" in body:
            value = rules.check_rule_value(body["root_rule"])
            out["rule_value"] = (value, ("mirror_rule", value))
        if "robot_username" in body:
            robot_id = await self._grant_robot(session, repo, body["robot_username"], actor)
            out["internal_robot_id"] = (robot_id, ("robot_username", body["robot_username"]))
        return out

    def _credential_changes(self, body: dict[str, Any]) -> dict[str, tuple[Any, tuple[str, Any]]]:
        has_user = "external_registry_username" in body
        has_pass = "external_registry_password" in body
        if has_pass and not has_user:
            raise rules.detail_error(
                "Unable to set a new password without also specifying a username."
            )
        out: dict[str, tuple[Any, tuple[str, Any]]] = {}
        if not has_user:
            return out
        username = body["external_registry_username"]
        password = body.get("external_registry_password")
        if has_pass and username is None and password is not None:
            raise rules.detail_error("Unable to delete username while setting a password.")
        sealed_user = self._seal("external_registry_username", username)
        out["external_registry_username"] = (sealed_user, ("external_registry_username", username))
        if has_pass:
            sealed = self._seal("external_registry_password", password)
            shown = "********" if password is not None else None
            out["external_registry_password"] = (sealed, ("external_registry_password", shown))
        return out

    def _merge_registry_config(
        self,
        session: AsyncSession,
        actor: Actor,
        repo: Repository,
        config: MirrorConfig,
        body: dict[str, Any],
    ) -> None:
        incoming = body.get("external_registry_config")
        if not isinstance(incoming, dict):
            return
        merged = dict(config.external_registry_config or {})
        for key, value in incoming.items():
            if key == "proxy" and isinstance(value, dict):
                proxy = dict(merged.get("proxy") or {})
                for pkey in PROXY_KEYS:
                    if pkey in value:
                        proxy[pkey] = value[pkey]
                        self._log_change(session, actor, repo, pkey, value[pkey])
                merged["proxy"] = proxy
            else:
                merged[key] = value
                self._log_change(session, actor, repo, key, value)
        config.external_registry_config = merged

    # --- read ------------------------------------------------------------------------------
    async def get(self, namespace: str, name: str) -> MirrorView:
        async with self.db.transaction(readonly=True) as session:
            repo = await self._repo(session, namespace, name)
            queries = MirrorQueries(session)
            config = await queries.for_repository(repo.id)
            if config is None:
                raise NotFound("Not Found")
            return MirrorView(
                config=config,
                username=self._open(config.external_registry_username),
                robot_username=await queries.robot_name(config.internal_robot_id),
                last_run=await queries.latest_run(config.id, finished=True),
                current_run=await queries.latest_run(config.id, finished=False),
            )

    def _open(self, sealed: str | None) -> str | None:
        if sealed is None:
            return None
        try:
            return self.cipher.decrypt(sealed)
        except DecryptionFailure:
            return INVALID_USERNAME

    async def runs(
        self, namespace: str, name: str, limit: int, before_id: int | None
    ) -> Sequence[MirrorRun]:
        async with self.db.transaction(readonly=True) as session:
            repo = await self._repo(session, namespace, name)
            config = await MirrorQueries(session).for_repository(repo.id)
            if config is None:
                raise NotFound("Not Found")
            return await MirrorQueries(session).runs(config.id, limit, before_id)

    # --- sync-now / cancel -----------------------------------------------------------------
    async def sync_now(self, namespace: str, name: str, actor: Actor) -> None:
        async with self.db.transaction() as session:
            repo = await self._repo(session, namespace, name)
            config = await self._config(session, repo)
            if config.sync_status == SyncStatus.SYNCING:
                raise NotFound("Not Found")
            config.sync_status = int(SyncStatus.SYNC_NOW)
            config.sync_expiration_date = None
            config.sync_retries_remaining = max(config.sync_retries_remaining, 1)
            config.sync_transaction_id = new_txn()
            self._log_change(session, actor, repo, "sync_status", "SYNC_NOW")
            await notify(session, MIRRORS_DUE)  # workers in other processes (PostgreSQL)
        if self.on_sync_now is not None:
            self.on_sync_now()

    async def cancel(self, namespace: str, name: str, actor: Actor) -> None:
        async with self.db.transaction() as session:
            repo = await self._repo(session, namespace, name)
            config = await self._config(session, repo)
            if config.sync_status not in {SyncStatus.SYNCING, SyncStatus.SYNC_NOW}:
                raise NotFound("Not Found")
            config.sync_status = int(SyncStatus.CANCEL)
            config.sync_expiration_date = None
            config.sync_retries_remaining = 0
            config.sync_transaction_id = new_txn()
            self._log_change(session, actor, repo, "sync_status", "SYNC_CANCEL")


def _exists(namespace: str, name: str) -> Conflict:
    # Quay's literal text, typo included ("exits").
    return Conflict(f"Mirror configuration already exits for repository {namespace}/{name}")


async def mirror_robot_lookup(session: AsyncSession, repository_id: int) -> str | None:
    """The robot allowed to push into a MIRROR repository (used by permission decisions)."""
    return await MirrorQueries(session).robot_for_repository(repository_id)
