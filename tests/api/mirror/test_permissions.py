"""Who may call the mirror routes and changestate (Quay's test_security matrix), and the
FEATURE_REPO_MIRROR gate: anonymous 401; no access, read, write, robot or a token without
repo:admin 403; the owner and a superuser reach the handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from moorage.auth import scopes as sc
from moorage.db.models import RepoRole, SyncStatus
from moorage.services.audit import Actor
from tests.api.mirror.conftest import (
    LOCAL_HOSTS,
    LOCAL_SOURCE,
    MIRROR_URL,
    NS,
    REPO_URL,
    ROBOT,
    MirrorEnv,
    assert_error,
    mirror_body,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return LOCAL_HOSTS


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    body: dict[str, Any] | None
    ok: int
    needs_mirror: bool = True
    status: SyncStatus | None = None  # prepared sync status

    def __str__(self) -> str:
        return f"{self.method} {self.path.removeprefix(REPO_URL) or '/'}"


ROUTES = [
    Route("GET", MIRROR_URL, None, 200),
    Route(
        "POST", MIRROR_URL, mirror_body(external_reference=LOCAL_SOURCE), 201, needs_mirror=False
    ),
    Route("PUT", MIRROR_URL, {"is_enabled": False}, 201),
    Route("POST", f"{MIRROR_URL}/sync-now", None, 204),
    Route("POST", f"{MIRROR_URL}/sync-cancel", None, 204, status=SyncStatus.SYNC_NOW),
    Route("GET", f"{MIRROR_URL}/runs", None, 200),
    Route("PUT", f"{REPO_URL}/changestate", {"state": "READ_ONLY"}, 200),
]
IDS = [str(r) for r in ROUTES]


async def call(env: MirrorEnv, route: Route, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if route.body is not None:
        kwargs["json"] = route.body
    return await env.http.request(route.method, route.path, **kwargs)


async def prepare(env: MirrorEnv, route: Route) -> None:
    if route.needs_mirror:
        await env.create_mirror(external_reference=LOCAL_SOURCE)
    if route.status is not None:
        await env.set_status(route.status)


async def snapshot(env: MirrorEnv) -> tuple[Any, ...]:
    row = await env.config_row()
    state = await env.repo_state()
    if row is None:
        return (None, state)
    return (
        row.is_enabled,
        row.sync_status,
        row.sync_retries_remaining,
        row.sync_transaction_id,
        state,
    )


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
async def test_denied(env: MirrorEnv, route: Route) -> None:
    await prepare(env, route)
    await env.user("freshuser")
    await env.user("reader")
    await env.set_role("reader", RepoRole.READ)
    await env.user("writer")
    await env.set_role("writer", RepoRole.WRITE)
    await env.set_role(ROBOT, RepoRole.WRITE)
    limited = await env.user(NS, [sc.REPO_READ, sc.REPO_WRITE, sc.REPO_CREATE, sc.USER_ADMIN])
    before = await snapshot(env)

    response = await call(env, route, {})
    assert_error(response, 401, "Requires authentication")
    assert response.json()["error_type"] == "invalid_token"
    response = await call(env, route, {"Authorization": "Bearer not-a-valid-token"})
    assert response.status_code == 401

    for who in ("freshuser", "reader", "writer", ROBOT, limited):
        response = await call(env, route, env.auth(who))
        assert_error(response, 403, "Unauthorized")
        assert response.json()["error_type"] == "insufficient_scope"
    assert await snapshot(env) == before


@pytest.mark.parametrize("who", ["owner", "superuser"])
@pytest.mark.parametrize("route", ROUTES, ids=IDS)
async def test_allowed(env: MirrorEnv, route: Route, who: str) -> None:
    await prepare(env, route)
    if who == "superuser":
        await env.user("admin")
    response = await call(env, route, env.auth(NS if who == "owner" else "admin"))
    assert response.status_code == route.ok, response.text
    if route.ok == 200 and route.method == "PUT":
        assert response.json() == {"success": True}


async def test_superuser_token_without_super_user_scope_is_denied(env: MirrorEnv) -> None:
    await env.create_mirror()
    token = await env.user("admin", [s for s in sc.ALL_SCOPES if s != sc.SUPER_USER])
    assert_error(await env.get(who=token), 403, "Unauthorized")


async def test_org_admin_may_manage_mirrors_of_org_repositories(env: MirrorEnv) -> None:
    owner = await env.account(NS)
    await env.accounts.create_org("acme", None, Actor(env.accounts.principal_for(owner)))
    robot = await env.robot("acme", "mirror")
    response = await env.http.post(
        "/api/v1/repository",
        json={"namespace": "acme", "repository": "app", "visibility": "private"},
        headers=env.auth(),
    )
    assert response.status_code == 201, response.text
    url = "/api/v1/repository/acme/app/mirror"
    response = await env.http.post(url, json=mirror_body(robot_username=robot), headers=env.auth())
    assert response.status_code == 201, response.text
    # The owner's own robot belongs to another namespace than acme/app.
    response = await env.http.put(url, json={"robot_username": ROBOT}, headers=env.auth())
    assert_error(response, 400, "Invalid robot")
    await env.user("freshuser")
    assert_error(await env.http.get(url, headers=env.auth("freshuser")), 403, "Unauthorized")


@pytest.mark.parametrize("config_overrides", [{"FEATURE_REPO_MIRROR": False}])
@pytest.mark.parametrize("who", ["owner", "superuser", "anonymous"])
async def test_feature_off_every_route_is_404(env: MirrorEnv, who: str) -> None:
    if who == "superuser":
        await env.user("admin")
    headers = {"owner": env.auth(), "superuser": env.auth("admin"), "anonymous": {}}[who]
    for route in ROUTES:
        response = await call(env, route, headers)
        assert_error(response, 404, "Not Found")
    assert await env.repo_state() == "NORMAL"
