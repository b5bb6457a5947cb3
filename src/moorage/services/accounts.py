"""Users, organizations, robots and access tokens; verifying credentials."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.auth import scopes as sc
from moorage.auth.passwords import (
    hash_password,
    new_token,
    token_hash,
    token_matches,
    verify_password,
)
from moorage.auth.permissions import Principal
from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.models import AccessToken, Account, AccountKind, OrgRole
from moorage.db.queries.accounts import AccountQueries
from moorage.errors import Conflict, InvalidRequest, NotFound
from moorage.services.audit import Actor, record

USERNAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
ROBOT_SHORT_RE = re.compile(r"^[a-z][a-z0-9_]{1,254}\Z")
OAUTH_USER = "$oauthtoken"
# Compared against when a robot name is unknown: no token hashes to it (64 non-hex characters).
_NO_ROBOT_HASH = "-" * 64
# An access token's last_used_at is precise to this many seconds (one write per token at most).
TOKEN_TOUCH_SECONDS = 60

# Returns True when a robot is used by something that forbids deleting it (a mirror).
RobotInUse = Callable[[AsyncSession, int], Awaitable[bool]]


def validate_username(name: str) -> str:
    if not (2 <= len(name) <= 255) or not USERNAME_RE.match(name):
        raise InvalidRequest(
            f"Invalid namespace {name!r}: use 2-255 lowercase letters, digits, '.', '_' or '-'"
        )
    return name


def is_plausible_name(name: str) -> bool:
    """Could ``name`` name an account? (Cheap pre-check before a lookup by name.)"""
    return 0 < len(name) <= 255 and "\x00" not in name


def split_robot(name: str) -> tuple[str, str]:
    """``namespace+short`` → (namespace, short); raises InvalidRequest when malformed."""
    namespace, plus, short = name.partition("+")
    if not plus or not namespace or not short or "+" in short:
        raise InvalidRequest("Invalid robot")
    return namespace, short


@dataclass(frozen=True, slots=True)
class CreatedSecret:
    """An account or token together with its secret, shown exactly once."""

    account: Account
    secret: str
    token: AccessToken | None = None


class AccountService:
    def __init__(self, db: Database, super_users: Sequence[str]) -> None:
        self.db = db
        self.super_users = frozenset(super_users)

    def principal_for(self, account: Account, scopes: frozenset[str] | None = None) -> Principal:
        return Principal(
            kind="robot" if account.kind == AccountKind.ROBOT else "user",
            name=account.username,
            account_id=account.id,
            superuser=account.kind == AccountKind.USER
            and (account.superuser or account.username in self.super_users),
            scopes=scopes,
        )

    # --- credentials ----------------------------------------------------------------------
    async def authenticate(self, username: str, secret: str) -> Principal | None:
        """Basic credentials: user+password, robot+token, or $oauthtoken+access token."""
        if username == OAUTH_USER:
            return await self.authenticate_token(secret)
        account = None
        if is_plausible_name(username):  # PostgreSQL refuses NUL characters in text
            async with self.db.transaction(readonly=True) as session:
                account = await AccountQueries(session).by_name(username)
        if "+" in username:
            # Only robots have a '+' in their name. A missing or disabled robot costs the same
            # hash-and-compare as a wrong token, so timing does not tell which robots exist.
            robot = account if account is not None and account.kind == AccountKind.ROBOT else None
            stored = robot.secret_hash if robot is not None else None
            matches = token_matches(stored or _NO_ROBOT_HASH, secret)
            return self.principal_for(robot) if matches and robot and robot.enabled else None
        if account is None or not account.enabled or account.kind != AccountKind.USER:
            await verify_password(None, secret)
            return None
        if await verify_password(account.secret_hash, secret):
            return self.principal_for(account)
        return None

    async def authenticate_token(self, token: str) -> Principal | None:
        """The token's principal, or None. A read; ``last_used_at`` is written at most once per
        TOKEN_TOUCH_SECONDS per token, so authenticated requests do not queue for the
        database's writer (SQLite has one) just to record the time."""
        now = utcnow()
        async with self.db.transaction(readonly=True) as session:
            found = await AccountQueries(session).token_by_hash(token_hash(token))
            if found is None:
                return None
            row, account = found
            if not account.enabled or (row.expires_at and row.expires_at < now):
                return None
            principal = self.principal_for(account, frozenset(row.scopes))
        stale = now - dt.timedelta(seconds=TOKEN_TOUCH_SECONDS)
        if row.last_used_at is None or row.last_used_at < stale:
            async with self.db.transaction() as session:
                await AccountQueries(session).touch_token(row.id, now, older_than=stale)
        return principal

    # --- users and organizations ---------------------------------------------------------
    async def create_user(
        self,
        username: str,
        password: str,
        email: str | None,
        actor: Actor | None = None,
        *,
        superuser: bool = False,
    ) -> Account:
        validate_username(username)
        if len(password) < 8:
            raise InvalidRequest("Password must be at least 8 characters long")
        secret = await hash_password(password)
        async with self.db.transaction() as session:
            queries = AccountQueries(session)
            if await queries.by_name(username) is not None:
                raise Conflict(f"The username {username} is already in use")
            account = await queries.add(
                Account(
                    username=username,
                    kind=AccountKind.USER,
                    email=email,
                    secret_hash=secret,
                    superuser=superuser,
                )
            )
            record(
                session, "user_create", actor, namespace=username, metadata={"username": username}
            )
            return account

    async def has_users(self) -> bool:
        async with self.db.transaction(readonly=True) as session:
            return await AccountQueries(session).count_users() > 0

    async def get(self, name: str) -> Account:
        if not is_plausible_name(name):
            raise NotFound("Not Found")
        async with self.db.transaction(readonly=True) as session:
            account = await AccountQueries(session).by_name(name)
        if account is None:
            raise NotFound("Not Found")
        return account

    async def create_org(self, name: str, email: str | None, actor: Actor) -> Account:
        validate_username(name)
        async with self.db.transaction() as session:
            queries = AccountQueries(session)
            if await queries.by_name(name) is not None:
                raise InvalidRequest("A user or organization with this name already exists")
            org = await queries.add(
                Account(username=name, kind=AccountKind.ORGANIZATION, email=email)
            )
            assert actor.principal.account_id is not None
            await queries.set_org_role(org.id, actor.principal.account_id, OrgRole.ADMIN)
            record(session, "org_create", actor, namespace=name, metadata={"email": email})
            return org

    async def organizations_of(self, account_id: int) -> Sequence[tuple[Account, OrgRole]]:
        async with self.db.transaction(readonly=True) as session:
            return await AccountQueries(session).organizations_of(account_id)

    # --- robots ---------------------------------------------------------------------------
    async def create_robot(
        self, namespace: str, short: str, description: str | None, actor: Actor
    ) -> CreatedSecret:
        if not ROBOT_SHORT_RE.match(short):
            raise InvalidRequest(
                "Invalid robot account name: use 2-255 lowercase letters, digits and '_'"
            )
        token = new_token(64)
        async with self.db.transaction() as session:
            queries = AccountQueries(session)
            owner = await queries.by_name(namespace)
            if owner is None or owner.kind == AccountKind.ROBOT:
                raise NotFound("Not Found")
            name = f"{namespace}+{short}"
            if await queries.by_name(name) is not None:
                raise InvalidRequest(f"Existing robot with name: {name}")
            robot = await queries.add(
                Account(
                    username=name,
                    kind=AccountKind.ROBOT,
                    owner_id=owner.id,
                    secret_hash=token_hash(token),
                    description=description,
                )
            )
            record(session, "create_robot", actor, namespace=namespace, metadata={"robot": name})
            return CreatedSecret(robot, token)

    async def regenerate_robot_token(self, robot_name: str, actor: Actor) -> CreatedSecret:
        token = new_token(64)
        async with self.db.transaction() as session:
            queries = AccountQueries(session)
            robot = await queries.by_name(robot_name)
            if robot is None or robot.kind != AccountKind.ROBOT:
                raise NotFound("Not Found")
            await queries.set_secret(robot.id, token_hash(token))
            namespace, _ = split_robot(robot_name)
            record(
                session,
                "regenerate_robot_token",
                actor,
                namespace=namespace,
                metadata={"robot": robot_name},
            )
            return CreatedSecret(robot, token)

    async def get_robot(self, robot_name: str) -> Account:
        account = await self.get(robot_name)
        if account.kind != AccountKind.ROBOT:
            raise NotFound("Not Found")
        return account

    async def list_robots(self, namespace: str) -> Sequence[Account]:
        async with self.db.transaction(readonly=True) as session:
            queries = AccountQueries(session)
            owner = await queries.by_name(namespace)
            if owner is None:
                raise NotFound("Not Found")
            return await queries.robots(owner.id)

    async def delete_robot(self, robot_name: str, actor: Actor, in_use: RobotInUse | None) -> None:
        async with self.db.transaction() as session:
            queries = AccountQueries(session)
            robot = await queries.by_name(robot_name)
            if robot is None or robot.kind != AccountKind.ROBOT:
                raise NotFound("Not Found")
            if in_use is not None and await in_use(session, robot.id):
                raise InvalidRequest("Robot is being used by a mirror")
            await queries.delete(robot.id)
            namespace, _ = split_robot(robot_name)
            record(
                session, "delete_robot", actor, namespace=namespace, metadata={"robot": robot_name}
            )

    # --- access tokens --------------------------------------------------------------------
    async def create_token(
        self, account_id: int, name: str, scopes: Sequence[str], actor: Actor | None
    ) -> CreatedSecret:
        unknown = sorted(set(scopes) - set(sc.ALL_SCOPES))
        if unknown:
            raise InvalidRequest(f"Unknown scopes: {', '.join(unknown)}")
        if not scopes:
            raise InvalidRequest("At least one scope is required")
        plaintext = new_token(40)
        async with self.db.transaction() as session:
            queries = AccountQueries(session)
            account = await queries.by_id(account_id)
            if account is None:
                raise NotFound("Not Found")
            token = await queries.add_token(
                AccessToken(
                    account_id=account_id,
                    name=name,
                    token_hash=token_hash(plaintext),
                    token_prefix=plaintext[:4],
                    scopes=sorted(set(scopes)),
                )
            )
            record(
                session,
                "create_application_token",
                actor,
                namespace=account.username,
                metadata={"token_name": name, "scopes": sorted(set(scopes))},
            )
            return CreatedSecret(account, plaintext, token)

    async def list_tokens(self, account_id: int) -> Sequence[AccessToken]:
        async with self.db.transaction(readonly=True) as session:
            return await AccountQueries(session).tokens_of(account_id)

    async def revoke_token(self, account_id: int, token_id: int, actor: Actor) -> None:
        async with self.db.transaction() as session:
            queries = AccountQueries(session)
            if not await queries.delete_token(account_id, token_id):
                raise NotFound("Not Found")
            account = await queries.by_id(account_id)
            record(
                session,
                "revoke_application_token",
                actor,
                namespace=account.username if account else None,
                metadata={"token_id": token_id},
            )
