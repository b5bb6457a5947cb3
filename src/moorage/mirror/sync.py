"""One mirror sync: list, plan, copy tags concurrently, prune, roll back if configured.

Pure decisions come from plan.py and filters.py; content moves through copier.py; this module
wires them and records what happened (run counters, audit entries, metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.auth.crypto import DecryptionFailure, FieldCipher
from moorage.config import Settings
from moorage.db.engine import Database
from moorage.db.models import SyncStatus
from moorage.db.queries.mirror_schedule import MirrorScheduleQueries
from moorage.errors import MoorageError
from moorage.mirror import errors as e
from moorage.mirror import local
from moorage.mirror.copier import Copier, CopyStats
from moorage.mirror.plan import make_plan
from moorage.mirror.reference import parse_external_reference
from moorage.mirror.scheduler import Claim, Outcome
from moorage.mirror.ssrf import SsrfGuard
from moorage.mirror.transport import build_client
from moorage.mirror.upstream import Credentials, UpstreamClient
from moorage.services.audit import record
from moorage.services.registry import RegistryServices
from moorage.services.repositories import RepoRef

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Counters of a running sync (persisted on the run row by the worker's heartbeat)."""

    tags_total: int = 0
    tags_copied: int = 0
    tags_skipped: int = 0
    tags_failed: int = 0
    tags_deleted: int = 0
    copy: CopyStats = field(default_factory=CopyStats)  # the copier counts bytes as they stream
    failed: list[str] = field(default_factory=list)

    @property
    def bytes_copied(self) -> int:
        return self.copy.bytes_copied

    def as_values(self) -> dict[str, int]:
        return {
            "tags_total": self.tags_total,
            "tags_copied": self.tags_copied,
            "tags_skipped": self.tags_skipped,
            "tags_failed": self.tags_failed,
            "tags_deleted": self.tags_deleted,
            "bytes_copied": self.bytes_copied,
        }


@dataclass(frozen=True, slots=True)
class SyncEnvironment:
    settings: Settings
    db: Database
    registry: RegistryServices
    cipher: FieldCipher
    ssrf: SsrfGuard


AuditFn = Callable[[str, dict[str, Any]], Awaitable[None]]


class MirrorSync:
    def __init__(self, env: SyncEnvironment, claim: Claim, progress: Progress) -> None:
        self.env = env
        self.claim = claim
        self.config = claim.config
        self.progress = progress
        self.reference_text = self.config.external_reference
        self.patterns = list(self.config.rule_value)

    async def audit(self, kind: str, **meta: Any) -> None:
        async with self.env.db.transaction() as session:
            self.audit_entry(kind, **meta)(session)

    def audit_entry(self, kind: str, **meta: Any) -> Callable[[AsyncSession], None]:
        """An audit entry with Quay's metadata keys, to add to a transaction."""
        metadata = {
            "verb": None,
            "message": None,
            "tag": None,
            "tags": None,
            "stdout": None,
            "stderr": None,
            **meta,
        }

        def add(session: AsyncSession) -> None:
            record(
                session,
                kind,
                None,
                namespace=self.claim.namespace,
                repository=self.claim.name,
                metadata=metadata,
            )

        return add

    def _pattern_text(self) -> str:
        return f"'{self.reference_text}' with tag pattern '{','.join(self.patterns)}'"

    def _credentials(self) -> Credentials:
        try:
            username = self._open(self.config.external_registry_username)
            password = self._open(self.config.external_registry_password)
        except DecryptionFailure as exc:
            raise e.CredentialsUnreadable(
                "the stored upstream credentials cannot be decrypted"
            ) from exc
        return Credentials(username, password)

    def _open(self, sealed: str | None) -> str | None:
        return self.env.cipher.decrypt(sealed) if sealed else None

    async def run(self) -> Outcome:
        try:
            reference = parse_external_reference(self.reference_text)
            await self.env.ssrf.check(reference)
        except MoorageError as exc:
            await self.audit(
                "repo_mirror_sync_failed",
                verb="end",
                message="Source registry location is not allowed",
                stdout="Not applicable",
                stderr="Not applicable",
            )
            return Outcome(SyncStatus.FAIL, e.SourceNotAllowed.kind, exc.message)
        await self.audit("repo_mirror_sync_started", verb="start", message=self._pattern_text())
        try:
            credentials = self._credentials()
        except e.CredentialsUnreadable as exc:
            await self.audit(
                "repo_mirror_sync_failed",
                verb="end",
                message=f"{self._pattern_text()}: {exc.message}",
            )
            return Outcome(SyncStatus.FAIL, exc.kind, exc.message)
        registry_config = dict(self.config.external_registry_config or {})
        verify_tls = registry_config.get("verify_tls", True) is not False
        settings = self.env.settings
        async with build_client(
            registry_config,
            settings.REPO_MIRROR_CA_BUNDLE,
            settings.REPO_MIRROR_CONNECTIONS_PER_HOST,
            self.env.ssrf,
        ) as http:
            upstream = UpstreamClient(
                http,
                reference,
                credentials,
                insecure_http_fallback=not verify_tls,
                ssrf=self.env.ssrf,
                max_manifest_size=settings.REPO_MIRROR_MAX_MANIFEST_LIST_SIZE,
            )
            return await self._sync(upstream)

    async def _sync(self, upstream: UpstreamClient) -> Outcome:
        try:
            upstream_tags = await upstream.list_tags()
        except e.MirrorError as exc:
            await self.audit(
                "repo_mirror_sync_failed",
                verb="end",
                message=f"{self._pattern_text()}: {exc.message}",
            )
            return Outcome(SyncStatus.FAIL, exc.kind, exc.message)
        repo = await self.env.registry.repositories.get(f"{self.claim.namespace}/{self.claim.name}")
        before = await local.alive_tags(self.env.db, repo.id)
        plan = make_plan(upstream_tags, self.patterns, before)
        self.progress.tags_total = len(plan.matching)
        copier = Copier(
            upstream,
            self.env.registry,
            repo,
            asyncio.Semaphore(self.env.settings.REPO_MIRROR_CONNECTIONS_PER_HOST),
            architectures=list(self.config.architecture_filter or []),
            max_entries=self.env.settings.REPO_MIRROR_MAX_MANIFEST_ENTRIES,
            stats=self.progress.copy,
        )
        try:
            first_error = await self._copy_all(plan.matching, plan, copier, upstream)
        finally:
            await copier.close()
        if not await self._still_claimed():
            # Cancelled (or taken over) while the last copies ended, before the worker's
            # watch noticed: never prune after a cancel. The worker records the cancel.
            raise asyncio.CancelledError
        self.progress.tags_deleted = await local.prune(self.env.db, repo.id, list(plan.to_prune))
        return await self._finish(repo, plan.matching, before, first_error)

    async def _still_claimed(self) -> bool:
        async with self.env.db.transaction(readonly=True) as session:
            row = await MirrorScheduleQueries(session).get(self.config.id)
        return (
            row is not None
            and row.sync_status == SyncStatus.SYNCING
            and row.lease_owner == self.claim.owner
            and row.sync_transaction_id == self.config.sync_transaction_id
        )

    async def _copy_all(
        self, tags: tuple[str, ...], plan: Any, copier: Copier, upstream: UpstreamClient
    ) -> e.MirrorError | None:
        slots = asyncio.Semaphore(self.env.settings.REPO_MIRROR_TAG_CONCURRENCY)
        errors: list[e.MirrorError] = []

        async def one(tag: str) -> None:
            async with slots:
                error = await self._copy_tag(tag, plan, copier, upstream)
                if error is not None:
                    errors.append(error)

        await asyncio.gather(*(one(t) for t in tags))
        return errors[0] if errors else None

    async def _copy_tag(
        self, tag: str, plan: Any, copier: Copier, upstream: UpstreamClient
    ) -> e.MirrorError | None:
        source = f"docker://{self.reference_text}:{tag}"
        try:
            async with asyncio.timeout(self.config.skopeo_timeout):
                digest = None
                if tag in plan.local:  # a new tag has nothing to compare: skip the HEAD
                    # On failure, fall back to the GET, which reports the real error.
                    with contextlib.suppress(e.UpstreamError):
                        digest = await upstream.head_manifest(tag)
                if plan.unchanged(tag, digest) and await copier.complete(tag):
                    self.progress.tags_skipped += 1
                    return None
                # The success entry commits with the tag itself (one transaction fewer).
                success = self.audit_entry(
                    "repo_mirror_sync_tag_success",
                    verb="finish",
                    tag=tag,
                    message=f"Source '{source}' successful sync",
                )
                copied = await copier.copy_tag(tag, also=success)
        except TimeoutError:
            error: e.MirrorError = e.TagTimeout(
                f"copying {tag} took longer than {self.config.skopeo_timeout} s"
            )
        except e.MirrorError as exc:
            error = exc
        except MoorageError as exc:  # e.g. an upstream manifest we cannot store
            error = e.UpstreamProtocolError(exc.message)
        else:
            if copied:
                self.progress.tags_copied += 1
            else:  # skipped by the architecture filter: nothing was written yet
                self.progress.tags_skipped += 1
                await self.audit(
                    "repo_mirror_sync_tag_success",
                    verb="finish",
                    tag=tag,
                    message=f"Source '{source}' successful sync",
                )
            return None
        self.progress.tags_failed += 1
        self.progress.failed.append(tag)
        await self.audit(
            "repo_mirror_sync_tag_failed",
            verb="finish",
            tag=tag,
            message=f"Source '{source}' failed to sync",
            stderr=error.message,
        )
        return error

    async def _finish(
        self,
        repo: RepoRef,
        matching: tuple[str, ...],
        before: dict[str, str],
        first_error: e.MirrorError | None,
    ) -> Outcome:
        if first_error is None:
            await self.audit(
                "repo_mirror_sync_success",
                verb="end",
                message=self._pattern_text(),
                tags=", ".join(matching) if matching else "No tags matched",
            )
            return Outcome(SyncStatus.SUCCESS)
        failed = set(self.progress.failed)
        if self.env.settings.REPO_MIRROR_ROLLBACK:
            await local.restore(self.env.db, repo.id, _previous(before, matching))
            message = f"{self._pattern_text()}: ROLLBACK"
        elif len(failed) < len(matching):
            message = f"{self._pattern_text()}: PARTIAL SYNC"
        else:
            message = f"{self._pattern_text()}: {first_error.message}"
        tags = ", ".join(f"{t}(FAILED)" if t in failed else t for t in matching)
        await self.audit("repo_mirror_sync_failed", verb="lost", message=message, tags=tags)
        return Outcome(SyncStatus.FAIL, first_error.kind, first_error.message)


def _previous(before: dict[str, str], matching: tuple[str, ...]) -> dict[str, str | None]:
    """What every tag this sync may have touched pointed at before it started."""
    names = set(before) | set(matching)
    return {name: before.get(name) for name in names}
