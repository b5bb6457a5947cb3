"""Fixtures of the mirror API tests: a secured app, accounts, a repository, a test DNS resolver.

Every test runs on SQLite + filesystem and PostgreSQL + S3 (``base_config``/``database``).
There is no internet here, so public registry names are resolved by a test resolver
(``FakeDns``, the only thing faked); public names are only used by tests that can never sync
(start date far in the future, no worker in these tests).

Settings per test: parametrize ``config_overrides`` with a dict of config keys, e.g.
``@pytest.mark.parametrize("config_overrides", [{"SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"]}])``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from moorage.app import create_app
from moorage.auth import scopes as sc
from moorage.config import Settings, load_settings
from moorage.db.engine import Database
from moorage.db.models import Account, AuditLog, MirrorConfig, RepoRole, Repository, SyncStatus
from moorage.db.queries.accounts import AccountQueries
from moorage.errors import NotFound
from moorage.services.accounts import AccountService
from moorage.services.audit import Actor

NS = "devtable"
REPO = "mirrored"
ROBOT = f"{NS}+mirrorbot"
PASSWORD = "correct horse battery"
FAR_FUTURE = "2099-01-02T06:30:00Z"
MIRROR_URL = f"/api/v1/repository/{NS}/{REPO}/mirror"
REPO_URL = f"/api/v1/repository/{NS}/{REPO}"
ALL_SCOPES = list(sc.ALL_SCOPES)
# For tests that queue a sync or start in the past: a source that can never be reached from
# here (discard port on loopback), allowed with LOCAL_HOSTS. Public names are only used with a
# start date far in the future and without sync-now.
LOCAL_SOURCE = "127.0.0.1:9/upstream/repo"
LOCAL_HOSTS = {"SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"]}

# Test DNS: public names map to public addresses that are never contacted.
DNS: dict[str, list[str]] = {
    "quay.io": ["34.1.2.3"],
    "example.com": ["34.1.2.4"],
    "registry.example.com": ["34.1.2.5"],
    "sneaky.example": ["10.1.2.3"],  # a public-looking name that resolves inside the network
    "mixed.example": ["34.1.2.6", "10.1.2.3"],  # one private answer is enough to refuse
    "mirror.corp.example": ["10.20.30.40"],
    "slow.example": ["34.1.2.7"],
}


class FakeDns:
    """The test resolver: answers from ``DNS``; unknown names fail like getaddrinfo does.

    ``hold(host)`` makes lookups of ``host`` wait (a slow DNS server) until the returned
    ``release`` event is set; ``asked[host]`` is set once such a lookup has started.
    """

    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = {}
        self.asked: dict[str, asyncio.Event] = {}

    def hold(self, host: str) -> asyncio.Event:
        self.asked[host] = asyncio.Event()
        self.release[host] = asyncio.Event()
        return self.release[host]

    async def __call__(self, host: str) -> list[str]:
        if host in self.release:
            self.asked[host].set()
            await self.release[host].wait()
        try:
            return list(DNS[host])
        except KeyError:
            raise OSError(f"[Errno -2] Name or service not known: {host!r}") from None


def mirror_body(**changes: Any) -> dict[str, Any]:
    """A valid POST body (Quay's test values); ``key=None`` keeps null, ``key=DROP`` removes."""
    body: dict[str, Any] = {
        "is_enabled": True,
        "external_reference": "quay.io/redhat/quay",
        "sync_interval": 5000,
        "skopeo_timeout_interval": 300,
        "sync_start_date": FAR_FUTURE,
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["latest", "3.3*"]},
        "robot_username": ROBOT,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


DROP: Any = object()


def assert_error(response: httpx.Response, status: int, text: str) -> None:
    """A handler error: the exact text under detail, message and error_message."""
    assert response.status_code == status, response.text
    body = response.json()
    for key in ("detail", "message", "error_message"):
        assert body[key] == text, (key, body)
    assert body["status"] == status


def assert_schema_error(response: httpx.Response, first_line: str) -> None:
    """A JSON-schema error: 400 whose detail starts with jsonschema's first line."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["detail"].startswith(first_line), body["detail"]
    assert body["detail"].split("\n", 1)[0] == first_line
    assert body["message"] == body["error_message"] == body["detail"]
    assert body["error_type"] == "invalid_request"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def mirror_settings(base_config: dict[str, Any], config_overrides: dict[str, Any]) -> Settings:
    values = {
        **base_config,
        "INSECURE_OPEN_REGISTRY_NO_AUTH": False,
        "SUPER_USERS": ["admin"],
        "FEATURE_REPO_MIRROR": True,
        "SSRF_ALLOWED_HOSTS": [],
        **config_overrides,
    }
    return load_settings(None, **values)


@pytest.fixture
def dns() -> FakeDns:
    return FakeDns()


@pytest.fixture
async def mirror_app(
    mirror_settings: Settings, database: Database, dns: FakeDns
) -> AsyncIterator[FastAPI]:
    app = create_app(mirror_settings, database=database, resolver=dns)
    async with app.router.lifespan_context(app):
        yield app


@dataclass
class MirrorEnv:
    """The world of one test: owner ``devtable`` with robot ``devtable+mirrorbot`` and the
    private repository ``devtable/mirrored``; more accounts on demand."""

    app: FastAPI
    http: httpx.AsyncClient
    db: Database
    tokens: dict[str, str] = field(default_factory=dict)
    basic: dict[str, str] = field(default_factory=dict)

    @property
    def accounts(self) -> AccountService:
        value: AccountService = self.app.state.accounts
        return value

    # --- accounts -------------------------------------------------------------------------
    async def user(self, name: str, scopes: list[str] | None = None) -> str:
        """Create user ``name`` (if needed) and an access token; return the token."""
        try:
            account = await self.accounts.get(name)
        except NotFound:
            account = await self.accounts.create_user(name, PASSWORD, None, Actor.system())
        created = await self.accounts.create_token(
            account.id, f"{name}-token", scopes or ALL_SCOPES, Actor.system()
        )
        self.tokens.setdefault(name, created.secret)
        return created.secret

    async def robot(self, namespace: str, short: str) -> str:
        owner = await self.accounts.get(namespace)
        actor = Actor(self.accounts.principal_for(owner))
        created = await self.accounts.create_robot(namespace, short, None, actor)
        name = created.account.username
        credentials = base64.b64encode(f"{name}:{created.secret}".encode()).decode()
        self.basic[name] = f"Basic {credentials}"
        return name

    async def set_role(self, username: str, role: RepoRole) -> None:
        async with self.db.transaction() as session:
            queries = AccountQueries(session)
            account = await queries.by_name(username)
            assert account is not None
            await queries.set_repo_role(await self.repo_id(), account.id, role)

    async def role(self, username: str) -> RepoRole | None:
        async with self.db.transaction(readonly=True) as session:
            queries = AccountQueries(session)
            account = await queries.by_name(username)
            assert account is not None
            return await queries.repo_role(await self.repo_id(), account.id)

    # --- HTTP -----------------------------------------------------------------------------
    def auth(self, who: str | None = NS) -> dict[str, str]:
        if who is None:
            return {}
        if who in self.basic:
            return {"Authorization": self.basic[who]}
        token = self.tokens.get(who, who)  # a user name, or a raw token
        return {"Authorization": f"Bearer {token}"}

    async def get(self, path: str = "", who: str | None = NS) -> httpx.Response:
        return await self.http.get(MIRROR_URL + path, headers=self.auth(who))

    async def post(
        self, body: Any = None, path: str = "", who: str | None = NS, **kwargs: Any
    ) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return await self.http.post(MIRROR_URL + path, headers=self.auth(who), **kwargs)

    async def put(self, body: Any, who: str | None = NS, **kwargs: Any) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return await self.http.put(MIRROR_URL, headers=self.auth(who), **kwargs)

    async def create_mirror(self, **changes: Any) -> dict[str, Any]:
        body = mirror_body(**changes)
        response = await self.post(body)
        assert response.status_code == 201, response.text
        return body

    async def mirror(self) -> dict[str, Any]:
        response = await self.get()
        assert response.status_code == 200, response.text
        value: dict[str, Any] = response.json()
        return value

    async def repo_state(self) -> str:
        response = await self.http.get(REPO_URL, headers=self.auth())
        assert response.status_code == 200, response.text
        return str(response.json()["state"])

    # --- database -------------------------------------------------------------------------
    async def repo_id(self) -> int:
        async with self.db.transaction(readonly=True) as session:
            stmt = select(Repository.id).where(Repository.namespace == NS, Repository.name == REPO)
            return int((await session.execute(stmt)).scalar_one())

    async def config_row(self) -> MirrorConfig | None:
        async with self.db.transaction(readonly=True) as session:
            stmt = select(MirrorConfig).where(MirrorConfig.repository_id == await self.repo_id())
            return (await session.execute(stmt)).scalar_one_or_none()

    async def mirror_count(self) -> int:
        async with self.db.transaction(readonly=True) as session:
            return len((await session.execute(select(MirrorConfig.id))).all())

    async def set_status(self, status: SyncStatus, retries: int | None = None) -> None:
        async with self.db.transaction() as session:
            stmt = select(MirrorConfig).where(MirrorConfig.repository_id == await self.repo_id())
            config = (await session.execute(stmt)).scalar_one()
            config.sync_status = int(status)
            if retries is not None:
                config.sync_retries_remaining = retries

    async def audit(self, kind: str | None = None) -> list[AuditLog]:
        async with self.db.transaction(readonly=True) as session:
            stmt = select(AuditLog).order_by(AuditLog.id)
            if kind is not None:
                stmt = stmt.where(AuditLog.kind == kind)
            return list((await session.execute(stmt)).scalars().all())

    async def account(self, name: str) -> Account:
        return await self.accounts.get(name)


@pytest.fixture
async def env(mirror_app: FastAPI, database: Database) -> AsyncIterator[MirrorEnv]:
    transport = httpx.ASGITransport(app=mirror_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as http:
        world = MirrorEnv(mirror_app, http, database)
        await world.user(NS)
        await world.robot(NS, "mirrorbot")
        response = await http.post(
            "/api/v1/repository",
            json={"namespace": NS, "repository": REPO, "visibility": "private"},
            headers=world.auth(),
        )
        assert response.status_code == 201, response.text
        yield world
