"""/api/v1/organization: create and read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from moorage.auth import scopes as sc
from moorage.db.models import AuditLog
from tests.api.conftest import World, bearer

pytestmark = pytest.mark.anyio


async def test_create_organization_makes_caller_admin(world: World) -> None:
    api = world.client
    response = await api.post(
        "/api/v1/organization/",
        json={"name": "neworg", "email": "team@neworg.example"},
        headers=world.auth("eve"),
    )
    assert response.status_code == 201, response.text
    assert response.json() == "Created"
    view = (await api.get("/api/v1/organization/neworg", headers=world.auth("eve"))).json()
    assert view["name"] == "neworg"
    assert view["email"] == "team@neworg.example"
    assert view["is_admin"] is True
    assert view["is_member"] is True
    assert view["teams"] == {}
    # eve may now administer the organization's robots.
    robot = await api.put("/api/v1/organization/neworg/robots/ci", headers=world.auth("eve"))
    assert robot.status_code == 201
    async with world.db.transaction(readonly=True) as session:
        entry = (
            await session.execute(
                select(AuditLog).where(
                    AuditLog.kind == "org_create", AuditLog.namespace == "neworg"
                )
            )
        ).scalar_one()
    assert entry.namespace == "neworg"
    assert entry.performer == "eve"
    assert entry.metadata_json["email"] == "team@neworg.example"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "acme"}, "A user or organization with this name already exists"),
        ({"name": "bob"}, "A user or organization with this name already exists"),
        ({"name": "Bad Name"}, "Invalid namespace"),
        ({}, "name: Field required"),
    ],
)
async def test_create_organization_rejects(
    world: World, body: dict[str, Any], message: str
) -> None:
    response = await world.client.post(
        "/api/v1/organization/", json=body, headers=world.auth("eve")
    )
    assert response.status_code == 400
    assert message in response.json()["detail"]


async def test_create_organization_scopes(world: World) -> None:
    api = world.client
    for scope in (sc.USER_ADMIN, sc.ORG_ADMIN):
        token = await world.token("eve", [scope])
        name = f"org-{scope.replace(':', '-')}"
        response = await api.post(
            "/api/v1/organization/", json={"name": name}, headers=bearer(token)
        )
        assert response.status_code == 201, response.text
    token = await world.token("eve", [sc.REPO_ADMIN, sc.USER_READ])
    response = await api.post("/api/v1/organization/", json={"name": "x1"}, headers=bearer(token))
    assert response.status_code == 403
    anonymous = await api.post("/api/v1/organization/", json={"name": "x2"})
    assert anonymous.status_code == 401


async def test_robot_cannot_create_organization(world: World) -> None:
    headers = {"Authorization": httpx.BasicAuth("acme+bot", world.robot_token)._auth_header}
    response = await world.client.post(
        "/api/v1/organization/", json={"name": "robotorg"}, headers=headers
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("user", "is_admin", "is_member", "email"),
    [
        ("alice", True, True, "ops@acme.example"),
        ("rita", False, True, ""),
        ("eve", False, False, ""),
        ("admin", False, False, "ops@acme.example"),
        (None, False, False, ""),
    ],
)
async def test_get_organization_views(
    world: World, user: str | None, is_admin: bool, is_member: bool, email: str
) -> None:
    headers = world.auth(user) if user else {}
    response = await world.client.get("/api/v1/organization/acme", headers=headers)
    assert response.status_code == 200
    view = response.json()
    assert view["name"] == "acme"
    assert (view["is_admin"], view["is_member"], view["email"]) == (is_admin, is_member, email)
    assert ("teams" in view) is is_member


@pytest.mark.parametrize("name", ["nothere", "alice", "acme+bot"])
async def test_get_organization_not_found(world: World, name: str) -> None:
    response = await world.client.get(f"/api/v1/organization/{name}", headers=world.auth("alice"))
    assert response.status_code == 404
    assert response.json()["error_type"] == "not_found"


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {}


class TestWithoutAnonymousAccess:
    @pytest.fixture
    def api_overrides(self) -> dict[str, Any]:
        return {"FEATURE_ANONYMOUS_ACCESS": False}

    async def test_anonymous_is_refused(self, world: World) -> None:
        response = await world.client.get("/api/v1/organization/acme")
        assert response.status_code == 401
        assert response.json()["detail"] == "Anonymous access is not allowed"
