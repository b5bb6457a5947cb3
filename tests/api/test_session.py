"""Browser sessions of the web UI: POST /api/v1/signin, /signout, GET /session, CSRF."""

from __future__ import annotations

import pytest

from moorage.auth import sessions
from moorage.auth.passwords import hash_password
from moorage.db.queries.accounts import AccountQueries
from tests.api.conftest import PASSWORD, World, basic

pytestmark = pytest.mark.anyio
CSRF = sessions.CSRF_HEADER


async def sign_in(world: World, user: str = "alice", password: str = PASSWORD) -> str:
    response = await world.client.post(
        "/api/v1/signin", json={"username": user, "password": password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["username"] == user
    return str(body["csrf_token"])


async def test_signin_sets_a_strict_httponly_cookie(world: World) -> None:
    response = await world.client.post(
        "/api/v1/signin", json={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{sessions.COOKIE_NAME}=")
    lowered = cookie.lower()
    for attribute in ("httponly", "samesite=strict", "path=/", "max-age=43200"):
        assert attribute in lowered, cookie
    assert "secure" not in lowered.replace("samesite", "")  # plain http in this test
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["csrf_token"]


async def test_cookie_authenticates_the_api(world: World) -> None:
    token = await sign_in(world)
    me = await world.client.get("/api/v1/user/")
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"
    session = (await world.client.get("/api/v1/session")).json()
    assert session["authenticated"] is True
    assert session["username"] == "alice"
    assert session["csrf_token"] == token
    assert session["expires_at"].endswith("Z")
    repos = await world.client.get("/api/v1/repository", params={"namespace": "acme"})
    assert [r["name"] for r in repos.json()["repositories"]] == ["app"]


async def test_writes_need_the_csrf_token(world: World) -> None:
    token = await sign_in(world)
    body = {"namespace": "acme", "repository": "viaui", "visibility": "private"}
    missing = await world.client.post("/api/v1/repository", json=body)
    assert missing.status_code == 403
    assert missing.json()["detail"] == "Invalid or missing CSRF token"
    wrong = await world.client.post("/api/v1/repository", json=body, headers={CSRF: "x" + token})
    assert wrong.status_code == 403
    created = await world.client.post("/api/v1/repository", json=body, headers={CSRF: token})
    assert created.status_code == 201, created.text
    # Robots (mirror form's inline create) go through the same check.
    robot = await world.client.put("/api/v1/user/robots/ui_bot", json={}, headers={CSRF: token})
    assert robot.status_code == 201, robot.text


async def test_explicit_credentials_win_over_the_cookie(world: World) -> None:
    await sign_in(world, "alice")
    me = await world.client.get("/api/v1/user/", headers=world.auth("bob"))
    assert me.json()["username"] == "bob"
    # Header-authenticated writes need no CSRF token (a cross-site page cannot set headers).
    created = await world.client.put("/api/v1/user/robots/bobs", json={}, headers=world.auth("bob"))
    assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password"), ("nobody", PASSWORD), ("acme", PASSWORD)],
)
async def test_failures_do_not_reveal_whether_the_user_exists(
    world: World, username: str, password: str
) -> None:
    response = await world.client.post(
        "/api/v1/signin", json={"username": username, "password": password}
    )
    assert response.status_code == 403
    body = response.json()
    assert body["detail"] == body["message"] == "Invalid username or password"
    assert body["success"] is False
    assert "set-cookie" not in response.headers


async def test_robots_cannot_sign_in(world: World) -> None:
    response = await world.client.post(
        "/api/v1/signin", json={"username": "acme+bot", "password": world.robot_token}
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "Invalid username or password"


async def test_malformed_signin_requests(world: World) -> None:
    missing = await world.client.post("/api/v1/signin", json={"username": "alice"})
    assert missing.status_code == 400
    assert missing.json()["error_type"] == "invalid_request"
    form = await world.client.post(
        "/api/v1/signin",
        content=f'{{"username": "alice", "password": "{PASSWORD}"}}',
        headers={"Content-Type": "text/plain"},
    )
    assert form.status_code == 400
    assert "set-cookie" not in form.headers


async def test_signout_clears_the_session(world: World) -> None:
    await sign_in(world)
    out = await world.client.post("/api/v1/signout")
    assert out.status_code == 200
    assert out.json() == {"success": True}
    assert "max-age=0" in out.headers["set-cookie"].lower()
    assert (await world.client.get("/api/v1/user/")).status_code == 401
    assert (await world.client.get("/api/v1/session")).json() == {"authenticated": False}


async def test_tampered_or_foreign_cookies_are_anonymous(world: World) -> None:
    await sign_in(world)
    value = world.client.cookies[sessions.COOKIE_NAME]
    world.client.cookies.clear()
    forged = value.replace(":alice:", ":admin:")
    world.client.cookies.set(sessions.COOKIE_NAME, forged, domain="reg.test")
    assert (await world.client.get("/api/v1/user/")).status_code == 401
    assert (await world.client.get("/api/v1/session")).json() == {"authenticated": False}


async def test_new_password_ends_existing_sessions(world: World) -> None:
    await sign_in(world)
    assert (await world.client.get("/api/v1/user/")).status_code == 200
    account = await world.accounts.get("alice")
    new_hash = await hash_password("a completely new password")
    async with world.db.transaction() as session:
        await AccountQueries(session).set_secret(account.id, new_hash)
    assert (await world.client.get("/api/v1/user/")).status_code == 401


async def test_the_registry_ignores_session_cookies(world: World) -> None:
    await sign_in(world)
    tags = await world.client.get("/v2/acme/app/tags/list")
    assert tags.status_code == 401
    # ...while Basic credentials keep working next to the cookie.
    with_basic = await world.client.get("/v2/acme/app/tags/list", headers=basic("alice", PASSWORD))
    assert with_basic.status_code == 200


async def test_tag_list_reports_architectures(world: World) -> None:
    from tests.support.images import OCI_INDEX, make_image, make_index, push_image

    world.client.headers.update(world.auth("alice"))
    arm = make_image(architecture="arm64")
    await push_image(world.client, "acme/app", arm, "arm")
    amd = make_image(architecture="amd64")
    await push_image(world.client, "acme/app", amd, amd.digest)
    index = make_index([(amd, "amd64"), (arm, "arm64")])
    put = await world.client.put(
        "/v2/acme/app/manifests/multi", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert put.status_code == 201, put.text
    tags = (await world.client.get("/api/v1/repository/acme/app/tag/")).json()["tags"]
    arches = {t["name"]: t["architectures"] for t in tags}
    assert arches == {"latest": ["amd64"], "arm": ["arm64"], "multi": ["amd64", "arm64"]}
