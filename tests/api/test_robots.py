"""Robot accounts under /api/v1/organization/{org}/robots and /api/v1/user/robots."""

from __future__ import annotations

import email.utils

import pytest
from sqlalchemy import select

from moorage.auth import scopes as sc
from moorage.db.models import AuditLog, MirrorConfig
from moorage.db.queries.repositories import RepositoryQueries
from tests.api.conftest import World, basic, bearer

pytestmark = pytest.mark.anyio
ORG = "/api/v1/organization/acme/robots"
USER = "/api/v1/user/robots"


async def audit(world: World, kind: str) -> list[AuditLog]:
    async with world.db.transaction(readonly=True) as session:
        rows = await session.execute(select(AuditLog).where(AuditLog.kind == kind))
        return list(rows.scalars().all())


async def test_org_robot_lifecycle(world: World) -> None:
    api, alice = world.client, world.auth("alice")
    created = await api.put(f"{ORG}/deployer", json={"description": "deploys"}, headers=alice)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "acme+deployer"
    assert body["description"] == "deploys"
    assert body["last_accessed"] is None
    assert email.utils.parsedate_to_datetime(body["created"]) is not None
    token = body["token"]
    assert len(token) == 64
    # The token works for the registry and the API.
    assert (await api.get("/v2/", headers=basic("acme+deployer", token))).status_code == 200

    one = await api.get(f"{ORG}/deployer", headers=alice)
    assert one.status_code == 200
    assert one.json()["name"] == "acme+deployer"
    assert "token" not in one.json()

    listing = await api.get(ORG, headers=alice)
    assert listing.status_code == 200
    names = [r["name"] for r in listing.json()["robots"]]
    assert names == ["acme+bot", "acme+deployer"]
    assert all("token" not in r for r in listing.json()["robots"])

    regenerated = await api.post(f"{ORG}/deployer/regenerate", headers=alice)
    assert regenerated.status_code == 200
    new_token = regenerated.json()["token"]
    assert new_token != token
    assert (await api.get("/v2/", headers=basic("acme+deployer", token))).status_code == 401
    assert (await api.get("/v2/", headers=basic("acme+deployer", new_token))).status_code == 200

    deleted = await api.delete(f"{ORG}/deployer", headers=alice)
    assert deleted.status_code == 204
    assert (await api.get(f"{ORG}/deployer", headers=alice)).status_code == 404
    assert (await api.delete(f"{ORG}/deployer", headers=alice)).status_code == 404

    kinds = {
        kind: [
            (e.namespace, e.performer, e.metadata_json["robot"]) for e in await audit(world, kind)
        ]
        for kind in ("create_robot", "regenerate_robot_token", "delete_robot")
    }
    assert ("acme", "alice", "acme+deployer") in kinds["create_robot"]
    assert kinds["regenerate_robot_token"] == [("acme", "alice", "acme+deployer")]
    assert kinds["delete_robot"] == [("acme", "alice", "acme+deployer")]


async def test_create_without_body_and_duplicates(world: World) -> None:
    api, alice = world.client, world.auth("alice")
    created = await api.put(f"{ORG}/nobody", headers=alice)
    assert created.status_code == 201
    assert created.json()["description"] == ""
    again = await api.put(f"{ORG}/nobody", headers=alice)
    assert again.status_code == 400
    assert again.json()["detail"] == "Existing robot with name: acme+nobody"


@pytest.mark.parametrize("short", ["A", "x", "has-dash", "9lives", "a+b"])
async def test_invalid_robot_names(world: World, short: str) -> None:
    response = await world.client.put(f"{ORG}/{short}", headers=world.auth("alice"))
    assert response.status_code == 400


async def test_org_robots_need_org_admin(world: World) -> None:
    api = world.client
    for user in ("rita", "eve", "bob"):
        assert (await api.get(ORG, headers=world.auth(user))).status_code == 403
        assert (await api.put(f"{ORG}/x1", headers=world.auth(user))).status_code == 403
    token = await world.token("alice", [sc.USER_ADMIN, sc.REPO_ADMIN])
    assert (await api.get(ORG, headers=bearer(token))).status_code == 403
    assert (await api.get(ORG)).status_code == 401
    # The superuser administers every organization.
    assert (await api.get(ORG, headers=world.auth("admin"))).status_code == 200


async def test_org_routes_need_an_organization(world: World) -> None:
    api = world.client
    # alice's own namespace is a user namespace: its robots live under /user/robots.
    assert (
        await api.get("/api/v1/organization/alice/robots", headers=world.auth("alice"))
    ).status_code == 404
    assert (
        await api.get("/api/v1/organization/nope/robots", headers=world.auth("admin"))
    ).status_code == 404


async def test_user_robots(world: World) -> None:
    api, eve = world.client, world.auth("eve")
    created = await api.put(f"{USER}/laptop", json={"description": "mine"}, headers=eve)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "eve+laptop"
    assert "token" in created.json()
    listing = (await api.get(USER, headers=eve)).json()["robots"]
    assert [r["name"] for r in listing] == ["eve+laptop"]
    assert (await api.get(USER, headers=world.auth("alice"))).json() == {"robots": []}
    assert (await api.get(f"{USER}/laptop", headers=world.auth("alice"))).status_code == 404
    one = await api.get(f"{USER}/laptop", headers=eve)
    assert one.json()["description"] == "mine"
    assert "token" not in one.json()
    regenerated = await api.post(f"{USER}/laptop/regenerate", headers=eve)
    assert regenerated.status_code == 200
    assert regenerated.json()["token"] != created.json()["token"]
    assert (await api.delete(f"{USER}/laptop", headers=eve)).status_code == 204
    assert (await api.get(USER, headers=eve)).json() == {"robots": []}
    entries = await audit(world, "create_robot")
    assert any(e.namespace == "eve" and e.metadata_json["robot"] == "eve+laptop" for e in entries)


async def test_user_robots_need_user_admin_scope(world: World) -> None:
    api = world.client
    token = await world.token("eve", [sc.USER_READ, sc.ORG_ADMIN])
    assert (await api.get(USER, headers=bearer(token))).status_code == 403
    assert (await api.put(f"{USER}/x1", headers=bearer(token))).status_code == 403
    assert (await api.get(USER)).status_code == 401
    robot = basic("acme+bot", world.robot_token)
    assert (await api.get(USER, headers=robot)).status_code == 403


async def test_robot_used_by_a_mirror_cannot_be_deleted(world: World) -> None:
    async with world.db.transaction() as session:
        repo = await RepositoryQueries(session).get("acme", "app")
        robot = await world.accounts.get("acme+bot")
        assert repo is not None
        session.add(
            MirrorConfig(
                repository_id=repo.id,
                internal_robot_id=robot.id,
                external_reference="registry.example.com/upstream/app",
                external_registry_config={},
                rule_value=["latest"],
                sync_interval=3600,
            )
        )
    response = await world.client.delete(f"{ORG}/bot", headers=world.auth("alice"))
    assert response.status_code == 400
    assert response.json()["detail"] == "Robot is being used by a mirror"
    assert (await world.client.get(f"{ORG}/bot", headers=world.auth("alice"))).status_code == 200
    assert await audit(world, "delete_robot") == []
