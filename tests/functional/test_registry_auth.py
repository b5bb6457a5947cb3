"""Docker token authentication on /v2/: challenges, scopes, robots, access tokens, states."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from moorage.app import create_app
from moorage.auth import scopes as sc
from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.services.accounts import AccountService
from moorage.services.audit import Actor
from tests.support.images import make_image, push_image

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery"


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


@pytest.fixture
async def secure(base_config: dict[str, Any], database: Database) -> AsyncIterator[Any]:
    config = {**base_config, "INSECURE_OPEN_REGISTRY_NO_AUTH": False, "SERVER_HOSTNAME": "reg.test"}
    settings = load_settings(None, **config)
    app = create_app(settings, database=database)
    async with app.router.lifespan_context(app):
        accounts: AccountService = app.state.accounts
        actor = Actor.system()
        alice = await accounts.create_user("alice", PASSWORD, None, actor)
        await accounts.create_user("bob", PASSWORD, None, actor)
        alice_principal = accounts.principal_for(alice)
        await accounts.create_org("acme", None, Actor(alice_principal))
        robot = await accounts.create_robot("acme", "builder", None, Actor(alice_principal))
        other = await accounts.create_robot("bob", "ci", None, Actor(alice_principal))
        read_token = await accounts.create_token(alice.id, "ro", [sc.REPO_READ], actor)
        write_token = await accounts.create_token(
            alice.id, "rw", [sc.REPO_READ, sc.REPO_WRITE, sc.REPO_CREATE], actor
        )
        app.state.test_secrets = {
            "robot": robot.secret,
            "other_robot": other.secret,
            "read_token": read_token.secret,
            "write_token": write_token.secret,
        }
        yield app


@pytest.fixture
async def http(secure: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=secure)
    async with httpx.AsyncClient(transport=transport, base_url="http://reg.test") as c:
        yield c


async def token_for(http: httpx.AsyncClient, scope: str, auth: str | None = None) -> str:
    headers = {"Authorization": auth} if auth else {}
    response = await http.get(
        "/v2/auth", params={"service": "reg.test", "scope": scope}, headers=headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def granted(token: str) -> list[dict[str, Any]]:
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})
    return list(claims["access"])


async def test_base_challenges_anonymous(http: httpx.AsyncClient) -> None:
    response = await http.get("/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="http://reg.test/v2/auth",service="reg.test"'
    )
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


async def test_bad_password_is_401(http: httpx.AsyncClient) -> None:
    response = await http.get("/v2/auth", headers={"Authorization": basic("alice", "wrong")})
    assert response.status_code == 401


async def test_token_flow_push_and_pull(http: httpx.AsyncClient) -> None:
    token = await token_for(http, "repository:alice/app:pull,push", basic("alice", PASSWORD))
    assert granted(token) == [
        {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}
    ]
    http.headers["Authorization"] = f"Bearer {token}"
    assert (await http.get("/v2/")).status_code == 200
    image = make_image()
    await push_image(http, "alice/app", image, "v1")
    assert (await http.get("/v2/alice/app/manifests/v1")).status_code == 200
    # The token names alice/app only: another repository needs another token.
    other = await http.get("/v2/alice/other/tags/list")
    assert other.status_code == 401
    assert 'scope="repository:alice/other:pull"' in other.headers["WWW-Authenticate"]


async def test_basic_auth_directly_on_v2(http: httpx.AsyncClient) -> None:
    http.headers["Authorization"] = basic("alice", PASSWORD)
    await push_image(http, "alice/direct", make_image(), "v1")
    assert (await http.get("/v2/alice/direct/tags/list")).json()["tags"] == ["v1"]


async def test_user_cannot_push_into_foreign_namespace(http: httpx.AsyncClient) -> None:
    token = await token_for(http, "repository:acme/app:pull,push", basic("bob", PASSWORD))
    assert granted(token)[0]["actions"] == []
    http.headers["Authorization"] = basic("bob", PASSWORD)
    response = await http.post("/v2/acme/app/blobs/uploads/")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"


async def test_oauth_token_scopes(http: httpx.AsyncClient, secure: Any) -> None:
    secrets = secure.state.test_secrets
    ro = await token_for(
        http, "repository:alice/tok:pull,push", basic("$oauthtoken", secrets["read_token"])
    )
    assert granted(ro)[0]["actions"] == []  # repo does not exist and repo:create is missing
    rw_auth = basic("$oauthtoken", secrets["write_token"])
    http.headers["Authorization"] = rw_auth
    await push_image(http, "alice/tok", make_image(), "v1")
    ro = await token_for(
        http, "repository:alice/tok:pull,push", basic("$oauthtoken", secrets["read_token"])
    )
    assert granted(ro)[0]["actions"] == ["pull"]


async def test_robot_needs_permission_and_stays_in_namespace(
    http: httpx.AsyncClient, secure: Any
) -> None:
    secrets = secure.state.test_secrets
    http.headers["Authorization"] = basic("alice", PASSWORD)
    await push_image(http, "acme/app", make_image(), "v1")
    robot = basic("acme+builder", secrets["robot"])
    token = await token_for(http, "repository:acme/app:pull,push", robot)
    assert granted(token)[0]["actions"] == []  # no permission yet
    response = await http.put(
        "/api/v1/repository/acme/app/permissions/user/acme+builder",
        json={"role": "write"},
    )
    if response.status_code == 404:
        pytest.skip("repository permission API not available yet")
    assert response.status_code == 200, response.text
    token = await token_for(http, "repository:acme/app:pull,push", robot)
    assert granted(token)[0]["actions"] == ["pull", "push"]
    foreign = basic("bob+ci", secrets["other_robot"])
    token = await token_for(http, "repository:acme/app:pull,push", foreign)
    assert granted(token)[0]["actions"] == []


async def test_private_repo_not_pullable_anonymously(http: httpx.AsyncClient) -> None:
    http.headers["Authorization"] = basic("alice", PASSWORD)
    await push_image(http, "alice/private", make_image(), "v1")
    del http.headers["Authorization"]
    token = await token_for(http, "repository:alice/private:pull")
    assert granted(token)[0]["actions"] == []
    response = await http.get("/v2/alice/private/manifests/v1")
    assert response.status_code == 401


async def test_public_repo_pullable_anonymously(http: httpx.AsyncClient) -> None:
    http.headers["Authorization"] = basic("alice", PASSWORD)
    await push_image(http, "alice/public", make_image(), "v1")
    response = await http.post(
        "/api/v1/repository/alice/public/changevisibility", json={"visibility": "public"}
    )
    assert response.status_code == 200, response.text
    del http.headers["Authorization"]
    token = await token_for(http, "repository:alice/public:pull,push")
    assert granted(token)[0]["actions"] == ["pull"]
    http.headers["Authorization"] = f"Bearer {token}"
    assert (await http.get("/v2/alice/public/manifests/v1")).status_code == 200


async def test_read_only_repository_refuses_push(http: httpx.AsyncClient) -> None:
    http.headers["Authorization"] = basic("alice", PASSWORD)
    await push_image(http, "alice/frozen", make_image(), "v1")
    response = await http.put(
        "/api/v1/repository/alice/frozen/changestate", json={"state": "READ_ONLY"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    refused = await http.post("/v2/alice/frozen/blobs/uploads/")
    assert refused.status_code == 403
    token = await token_for(http, "repository:alice/frozen:pull,push", basic("alice", PASSWORD))
    assert granted(token)[0]["actions"] == ["pull"]
    assert (await http.get("/v2/alice/frozen/manifests/v1")).status_code == 200


async def test_catalog_with_bearer_token_lists_readable_repositories(
    http: httpx.AsyncClient,
) -> None:
    http.headers["Authorization"] = basic("alice", PASSWORD)
    await push_image(http, "alice/listed", make_image(), "v1")
    await push_image(http, "acme/also", make_image(), "v1")
    token = await token_for(http, "registry:catalog:*", basic("bob", PASSWORD))
    http.headers["Authorization"] = f"Bearer {token}"
    assert (await http.get("/v2/_catalog")).json()["repositories"] == []
    token = await token_for(http, "registry:catalog:*", basic("alice", PASSWORD))
    http.headers["Authorization"] = f"Bearer {token}"
    listed = (await http.get("/v2/_catalog")).json()["repositories"]
    assert listed == ["acme/also", "alice/listed"]
