"""/api/v1/repository/{ns}/{repo}/permissions/user/: per-user repository roles."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from moorage.auth import scopes as sc
from moorage.db.models import AuditLog
from tests.api.conftest import World, bearer

pytestmark = pytest.mark.anyio
PERMS = "/api/v1/repository/acme/app/permissions/user/"


async def test_list_permissions(world: World) -> None:
    response = await world.client.get(PERMS, headers=world.auth("alice"))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "permissions": {
            "bob": {
                "role": "write",
                "name": "bob",
                "is_robot": False,
                "avatar": {},
                "is_org_member": False,
            },
            "rita": {
                "role": "read",
                "name": "rita",
                "is_robot": False,
                "avatar": {},
                "is_org_member": True,
            },
        }
    }


async def test_grant_change_read_and_revoke(world: World) -> None:
    api, alice = world.client, world.auth("alice")
    # eve cannot see the repository yet.
    assert (
        await api.get("/api/v1/repository/acme/app", headers=world.auth("eve"))
    ).status_code == 403
    granted = await api.put(f"{PERMS}eve", json={"role": "read"}, headers=alice)
    assert granted.status_code == 200, granted.text
    assert granted.json() == {
        "role": "read",
        "name": "eve",
        "is_robot": False,
        "avatar": {},
        "is_org_member": False,
    }
    assert (
        await api.get("/api/v1/repository/acme/app", headers=world.auth("eve"))
    ).status_code == 200
    changed = await api.put(f"{PERMS}eve", json={"role": "admin"}, headers=alice)
    assert changed.json()["role"] == "admin"
    # eve, now a repository admin, may manage permissions herself.
    one = await api.get(f"{PERMS}eve", headers=world.auth("eve"))
    assert one.status_code == 200
    assert one.json()["role"] == "admin"
    revoked = await api.delete(f"{PERMS}eve", headers=alice)
    assert revoked.status_code == 204
    assert (await api.get(f"{PERMS}eve", headers=alice)).status_code == 404
    assert (await api.delete(f"{PERMS}eve", headers=alice)).status_code == 404
    assert (
        await api.get("/api/v1/repository/acme/app", headers=world.auth("eve"))
    ).status_code == 403

    async with world.db.transaction(readonly=True) as session:
        rows = await session.execute(
            select(AuditLog)
            .where(AuditLog.kind.in_(["change_repo_permission", "delete_repo_permission"]))
            .where(AuditLog.performer == "alice")
            .order_by(AuditLog.id)
        )
        entries = [
            (e.kind, e.repository, e.metadata_json.get("username"), e.metadata_json.get("role"))
            for e in rows.scalars()
        ]
    assert entries == [
        ("change_repo_permission", "app", "eve", "read"),
        ("change_repo_permission", "app", "eve", "admin"),
        ("delete_repo_permission", "app", "eve", None),
    ]


async def test_robots(world: World) -> None:
    api, alice = world.client, world.auth("alice")
    own = await api.put(f"{PERMS}acme+bot", json={"role": "write"}, headers=alice)
    assert own.status_code == 200
    assert own.json()["is_robot"] is True
    assert own.json()["is_org_member"] is True
    await world.accounts.create_robot("eve", "thief", None, await world.actor("eve"))
    foreign = await api.put(f"{PERMS}eve+thief", json={"role": "read"}, headers=alice)
    assert foreign.status_code == 400
    assert foreign.json()["detail"] == "Invalid robot"


@pytest.mark.parametrize(
    ("username", "body", "message"),
    [
        ("nobody", {"role": "read"}, "Invalid username: nobody"),
        ("acme", {"role": "read"}, "Namespace owner must always be admin."),
        ("eve", {"role": "owner"}, "role: Input should be 'read', 'write' or 'admin'"),
        ("eve", {}, "role: Field required"),
    ],
)
async def test_invalid_grants(
    world: World, username: str, body: dict[str, str], message: str
) -> None:
    response = await world.client.put(f"{PERMS}{username}", json=body, headers=world.auth("alice"))
    assert response.status_code == 400
    assert response.json()["detail"] == message


async def test_organization_cannot_be_granted(world: World) -> None:
    await world.accounts.create_org("other", None, await world.actor("eve"))
    response = await world.client.put(
        f"{PERMS}other", json={"role": "read"}, headers=world.auth("alice")
    )
    assert response.status_code == 400


async def test_user_namespace_has_no_org_membership(world: World) -> None:
    await world.create_repo("eve/mine", user="eve")
    url = "/api/v1/repository/eve/mine/permissions/user/"
    granted = await world.client.put(f"{url}bob", json={"role": "read"}, headers=world.auth("eve"))
    assert granted.status_code == 200
    assert "is_org_member" not in granted.json()
    assert (await world.client.delete(f"{url}eve", headers=world.auth("eve"))).status_code == 400


async def test_permissions_need_repo_admin(world: World) -> None:
    api = world.client
    for user in ("rita", "bob", "eve"):
        assert (await api.get(PERMS, headers=world.auth(user))).status_code == 403
        put = await api.put(f"{PERMS}eve", json={"role": "admin"}, headers=world.auth(user))
        assert put.status_code == 403
    token = await world.token("alice", [sc.REPO_WRITE, sc.ORG_ADMIN])
    assert (await api.get(PERMS, headers=bearer(token))).status_code == 403
    assert (await api.get(PERMS)).status_code == 401
    assert (await api.get(PERMS, headers=world.auth("admin"))).status_code == 200
    missing = await api.get(
        "/api/v1/repository/acme/nope/permissions/user/", headers=world.auth("alice")
    )
    assert missing.status_code == 404
