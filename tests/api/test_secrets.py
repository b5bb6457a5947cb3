"""Secrets (passwords, robot tokens, access tokens) appear only in the response that creates
them: never in other responses, audit-log metadata or log records (captured at DEBUG)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from moorage.db.models import AuditLog
from tests.api.conftest import PASSWORD as WORLD_PASSWORD
from tests.api.conftest import basic, bearer
from tests.api.test_permission_matrix import DEFAULT_PARAMS, MATRIX
from tests.support.images import make_image, push_image

pytestmark = pytest.mark.anyio
PASSWORD = "S3cret-Passw0rd-for-root"
WRONG_PASSWORD = "Wr0ng-Passw0rd-never-shown"


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {"FEATURE_USER_INITIALIZE": True}


class Recorder:
    """Remembers every response body, and which secrets a response may legitimately show."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.bodies: list[tuple[str, str, frozenset[str]]] = []

    async def __call__(self, method: str, url: str, **kw: Any) -> httpx.Response:
        response = await self.client.request(method, url, **kw)
        self.bodies.append(
            (f"{method} {url} -> {response.status_code}", response.text, frozenset())
        )
        return response

    def created(self, secret: str) -> str:
        """The last response created ``secret``: it alone may show it."""
        what, text, _ = self.bodies[-1]
        self.bodies[-1] = (what, text, frozenset({secret}))
        return secret


async def test_secrets_never_leak(
    api: httpx.AsyncClient, api_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    call = Recorder(api)

    init = await call(
        "POST",
        "/api/v1/user/initialize",
        json={"username": "root", "password": PASSWORD, "email": "root@example.com"},
    )
    assert init.status_code == 200, init.text
    access = call.created(init.json()["access_token"])
    auth = bearer(access)

    token = await call(
        "POST", "/api/v1/user/tokens", headers=auth, json={"name": "ci", "scopes": ["repo:read"]}
    )
    assert token.status_code == 201
    second_token = call.created(token.json()["token"])

    assert (
        await call("POST", "/api/v1/organization/", headers=auth, json={"name": "acme"})
    ).status_code == 201
    robot = await call(
        "PUT", "/api/v1/organization/acme/robots/bot", headers=auth, json={"description": "d"}
    )
    first_robot = call.created(robot.json()["token"])
    regenerated = await call(
        "POST", "/api/v1/organization/acme/robots/bot/regenerate", headers=auth
    )
    robot_token = call.created(regenerated.json()["token"])
    user_robot = await call("PUT", "/api/v1/user/robots/bot", headers=auth)
    user_robot_token = call.created(user_robot.json()["token"])

    assert (
        await call(
            "POST",
            "/api/v1/repository",
            headers=auth,
            json={"repository": "app", "namespace": "acme"},
        )
    ).status_code == 201
    api.headers.update(basic("root", PASSWORD))
    digest = await push_image(api, "acme/app", make_image(), "latest")
    api.headers.update(basic("acme+bot", robot_token))
    assert (await api.get("/v2/")).status_code == 200
    api.headers.update(basic("root", WRONG_PASSWORD))
    assert (await api.get("/v2/")).status_code == 401
    del api.headers["Authorization"]
    assert (
        await call("GET", "/api/v1/user/", headers=basic("root", WRONG_PASSWORD))
    ).status_code == 401
    assert (await call("GET", "/api/v1/user/", headers=basic("root", PASSWORD))).status_code == 200
    assert (
        await call("GET", "/api/v1/user/", headers=basic("acme+bot", robot_token))
    ).status_code == 200
    assert (await call("GET", "/api/v1/user/", headers=bearer(second_token))).status_code == 403

    base = "/api/v1/repository/acme/app"
    changes = [
        ("PUT", f"{base}/permissions/user/acme+bot", {"role": "write"}),
        ("PUT", f"{base}/tag/v2", {"manifest_digest": digest}),
        ("DELETE", f"{base}/tag/v2", None),
        ("POST", f"{base}/changevisibility", {"visibility": "public"}),
        ("PUT", f"{base}/changestate", {"state": "NORMAL"}),
        ("PUT", "/api/v1/user/robots/other", None),
        ("DELETE", "/api/v1/user/robots/other", None),
    ]
    for method, url, body in changes:
        response = await call(method, url, headers=auth, **({"json": body} if body else {}))
        assert response.status_code < 300, (url, response.text)
        if url.endswith("/robots/other") and method == "PUT":
            call.created(response.json()["token"])

    # Every GET route of the API, as the owner.
    params = {**DEFAULT_PARAMS, "username": "acme+bot"}
    for method, template in MATRIX:
        if method == "GET":
            await call("GET", template.format(**params), headers=auth)
    await call("GET", "/api/v1/organization/acme/robots", headers=auth, params={"token": "true"})

    secrets = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "access token": access,
        "second access token": second_token,
        "first robot token": first_robot,
        "robot token": robot_token,
        "user robot token": user_robot_token,
    }
    secrets |= {f"created {i}": s for i, (_, _, c) in enumerate(call.bodies) for s in c}

    leaks = [
        f"{name} in response of {what}"
        for what, text, allowed in call.bodies
        for name, secret in secrets.items()
        if secret in text and secret not in allowed
    ]
    assert not leaks, leaks

    async with api_app.state.db.transaction(readonly=True) as session:
        entries = (await session.execute(select(AuditLog))).scalars().all()
    assert {"org_create", "create_robot", "regenerate_robot_token", "change_repo_permission"} <= {
        e.kind for e in entries
    }
    for entry in entries:
        dumped = json.dumps(
            [entry.kind, entry.namespace, entry.repository, entry.performer, entry.metadata_json]
        )
        for name, secret in secrets.items():
            assert secret not in dumped, f"{name} in audit entry {entry.kind}"

    assert caplog.records, "nothing was logged: the check below would prove nothing"
    for record in caplog.records:
        text = " ".join(
            [record.getMessage(), repr(record.args), record.exc_text or "", str(record.__dict__)]
        )
        for name, secret in secrets.items():
            assert secret not in text, f"{name} in log record {record.name}: {record.msg!r}"


async def test_session_registry_server_and_upstream_secrets_never_leak(
    world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Session cookies, CSRF tokens, registry JWTs, the server's own keys and mirror upstream
    passwords: absent from every response but the one that issues them, from error messages
    (validation, failed and throttled logins, schema errors), audit entries and logs."""
    caplog.set_level(logging.DEBUG)
    client: httpx.AsyncClient = world.client
    call = Recorder(client)
    settings = world.app.state.settings
    upstream_password = "Upstream-Pa55word-never-echoed"
    auth = world.auth("alice")

    signin = await call(
        "POST", "/api/v1/signin", json={"username": "alice", "password": WORLD_PASSWORD}
    )
    assert signin.status_code == 200, signin.text
    cookie = signin.cookies["moorage_session"]
    csrf = call.created(signin.json()["csrf_token"])
    session = await call("GET", "/api/v1/session")
    assert session.json()["csrf_token"] == csrf
    call.created(csrf)  # the session endpoint hands the token back to the page, by design
    client.cookies.clear()

    issued = await call(
        "GET",
        "/v2/auth",
        params={"scope": "repository:acme/app:pull"},
        headers=basic("alice", WORLD_PASSWORD),
    )
    jwt_token = call.created(issued.json()["token"])
    await call("GET", "/v2/acme/app/tags/list", headers=bearer(jwt_token))
    await call("GET", "/api/v1/user/", headers=bearer(jwt_token))  # 401: not an API credential

    # Failed, malformed and throttled logins, and validation errors, echo nothing.
    for _ in range(6):
        await call("POST", "/api/v1/signin", json={"username": "bob", "password": WRONG_PASSWORD})
        await call("GET", "/v2/auth", headers=basic("bob", WRONG_PASSWORD))
        await call("GET", "/api/v1/user/", headers=basic("bob", WRONG_PASSWORD))
    long_password = WRONG_PASSWORD * 400
    await call("POST", "/api/v1/signin", json={"username": "bob", "password": long_password})
    await call("GET", "/v2/", headers=basic("bo\x00b", WRONG_PASSWORD))
    await call("GET", "/v2/", headers={"Authorization": f"Basic {WRONG_PASSWORD}"})
    await call("GET", "/v2/", headers={"Authorization": f"Bearer {WRONG_PASSWORD}"})

    # Mirror bodies that fail validation must not echo the upstream password.
    robot = await call("PUT", "/api/v1/user/robots/mirror", headers=auth)
    call.created(robot.json()["token"])
    base = "/api/v1/repository/acme/app/mirror"
    bad_bodies = [
        {"external_registry_password": upstream_password, "external_reference": "x/y"},
        {"external_registry_password": {"value": upstream_password}},
        {"external_registry_password": [upstream_password]},
        {
            "external_reference": 5,
            "external_registry_username": "u",
            "external_registry_password": upstream_password,
        },
    ]
    for body in bad_bodies:
        response = await call("POST", base, headers=auth, json=body)
        assert response.status_code == 400, response.text
        response = await call("PUT", base, headers=auth, json=body)
        assert response.status_code in (400, 404), response.text

    secrets = {
        "password": WORLD_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "session cookie": cookie,
        "csrf token": csrf,
        "registry token": jwt_token,
        "upstream password": upstream_password,
        "SECRET_KEY": settings.secret("SECRET_KEY"),
        "DATABASE_SECRET_KEY": settings.secret("DATABASE_SECRET_KEY"),
        "robot token": world.robot_token,
        **{f"token of {user}": token for user, token in world.tokens.items()},
    }
    secrets |= {f"created {i}": s for i, (_, _, c) in enumerate(call.bodies) for s in c}
    leaks = [
        f"{name} in response of {what}"
        for what, text, allowed in call.bodies
        for name, secret in secrets.items()
        if secret in text and secret not in allowed
    ]
    assert not leaks, leaks

    async with world.db.transaction(readonly=True) as session_:
        entries = (await session_.execute(select(AuditLog))).scalars().all()
    for entry in entries:
        dumped = json.dumps(
            [entry.kind, entry.namespace, entry.repository, entry.performer, entry.metadata_json]
        )
        for name, secret in secrets.items():
            assert secret not in dumped, f"{name} in audit entry {entry.kind}"
    assert caplog.records
    for record in caplog.records:
        text = " ".join(
            [record.getMessage(), repr(record.args), record.exc_text or "", str(record.__dict__)]
        )
        for name, secret in secrets.items():
            assert secret not in text, f"{name} in log record {record.name}: {record.msg!r}"
