"""Fixtures for /api/v1 tests: an app with real authentication, users, an org, a repository.

``world`` seeds, through the services (never through the API under test):

- users ``alice`` (admin of organization ``acme``), ``bob``, ``eve`` (no access anywhere),
  ``rita`` (member of ``acme``, read permission on ``acme/app``) and the superuser ``admin``;
- the private repository ``acme/app`` with one image tagged ``latest``; ``bob`` may write it;
- the robot ``acme+bot``.

Requests authenticate with access tokens (cheap to verify) unless a test needs a password.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from moorage.app import create_app
from moorage.auth import passwords
from moorage.auth import scopes as sc
from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.db.models import OrgRole, RepoRole, Visibility
from moorage.db.queries.accounts import AccountQueries
from moorage.services.accounts import AccountService
from moorage.services.audit import Actor
from moorage.services.management import ManagementServices
from tests.support.images import make_image, push_image

PASSWORD = "correct horse battery staple"
USERS = ("alice", "bob", "eve", "rita", "admin")
ALL = tuple(sc.ALL_SCOPES)


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_config(base_config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        **base_config,
        "INSECURE_OPEN_REGISTRY_NO_AUTH": False,
        "SUPER_USERS": ["admin"],
        "SERVER_HOSTNAME": "reg.test",
        **overrides,
    }


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with minimal cost: these tests create many users, none is attacked."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    """Override in a test module to change the app's configuration."""
    return {}


@pytest.fixture
async def api_app(
    base_config: dict[str, Any], database: Database, api_overrides: dict[str, Any]
) -> AsyncIterator[FastAPI]:
    settings = load_settings(None, **api_config(base_config, **api_overrides))
    application = create_app(settings, database=database)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An unauthenticated client; pass ``headers=`` per request."""
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reg.test") as c:
        yield c


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    digest: str = ""
    tokens: dict[str, str] = field(default_factory=dict)  # user -> token with every scope
    robot_token: str = ""
    _scoped: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)

    @property
    def accounts(self) -> AccountService:
        value: AccountService = self.app.state.accounts
        return value

    @property
    def management(self) -> ManagementServices:
        value: ManagementServices = self.app.state.management
        return value

    @property
    def db(self) -> Database:
        value: Database = self.app.state.db
        return value

    def auth(self, user: str) -> dict[str, str]:
        return bearer(self.tokens[user])

    async def actor(self, user: str) -> Actor:
        return Actor(self.accounts.principal_for(await self.accounts.get(user)))

    async def token(self, user: str, scopes: Sequence[str]) -> str:
        key = (user, tuple(sorted(scopes)))
        if key not in self._scoped:
            account = await self.accounts.get(user)
            created = await self.accounts.create_token(
                account.id, "test", list(scopes), Actor.system()
            )
            self._scoped[key] = created.secret
        return self._scoped[key]

    async def add_member(self, org: str, user: str, role: OrgRole) -> None:
        async with self.db.transaction() as session:
            queries = AccountQueries(session)
            org_account = await queries.by_name(org)
            account = await queries.by_name(user)
            assert org_account is not None
            assert account is not None
            await queries.set_org_role(org_account.id, account.id, role)

    async def grant(self, repo: str, user: str, role: RepoRole) -> None:
        namespace, name = repo.split("/", 1)
        await self.management.permissions.set(namespace, name, user, role, Actor.system())

    async def push(self, repo: str, tag: str, user: str = "alice") -> str:
        """Push a fresh image with /v2 Basic credentials ($oauthtoken + access token)."""
        image = make_image()
        self.client.headers.update(basic("$oauthtoken", self.tokens[user]))
        try:
            return await push_image(self.client, repo, image, tag)
        finally:
            del self.client.headers["Authorization"]

    async def create_repo(
        self, repo: str, visibility: Visibility = Visibility.PRIVATE, user: str = "alice"
    ) -> None:
        namespace, name = repo.split("/", 1)
        await self.management.repositories.create(
            namespace, name, visibility, None, await self.actor(user)
        )


async def seed(app: FastAPI, client: httpx.AsyncClient) -> World:
    world = World(app, client)
    system = Actor.system()
    for user in USERS:
        account = await world.accounts.create_user(user, PASSWORD, f"{user}@example.com", system)
        created = await world.accounts.create_token(account.id, "all", list(ALL), system)
        world.tokens[user] = created.secret
    await world.accounts.create_org("acme", "ops@acme.example", await world.actor("alice"))
    await world.add_member("acme", "rita", OrgRole.MEMBER)
    await world.create_repo("acme/app")
    world.digest = await world.push("acme/app", "latest")
    await world.grant("acme/app", "rita", RepoRole.READ)
    await world.grant("acme/app", "bob", RepoRole.WRITE)
    robot = await world.accounts.create_robot("acme", "bot", "CI", await world.actor("alice"))
    world.robot_token = robot.secret
    return world


@pytest.fixture
async def world(api_app: FastAPI, api: httpx.AsyncClient) -> World:
    return await seed(api_app, api)
