"""Usage logs: /api/v1/repository/{ns}/{repo}/logs and /api/v1/organization/{org}/logs."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from moorage.auth import scopes as sc
from moorage.db.models import AuditLog
from tests.api.conftest import World, bearer

pytestmark = pytest.mark.anyio
REPO_LOGS = "/api/v1/repository/acme/app/logs"
ORG_LOGS = "/api/v1/organization/acme/logs"


async def add_entry(world: World, when: dt.datetime, kind: str = "push_repo", **kw: str) -> None:
    async with world.db.transaction() as session:
        session.add(
            AuditLog(
                kind=kind,
                namespace=kw.get("namespace", "acme"),
                repository=kw.get("repository", "app"),
                performer=kw.get("performer"),
                performer_kind=kw.get("performer_kind"),
                ip="10.0.0.1",
                metadata_json={"marker": kw.get("marker", "")},
                created_at=when,
            )
        )


async def test_repository_logs(world: World) -> None:
    api, alice = world.client, world.auth("alice")
    await api.delete("/api/v1/repository/acme/app/tag/latest", headers=alice)
    response = await api.get(REPO_LOGS, headers=alice)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "next_page" not in body
    start = email.utils.parsedate_to_datetime(body["start_time"])
    end = email.utils.parsedate_to_datetime(body["end_time"])
    assert dt.timedelta(days=7) < end - start <= dt.timedelta(days=8)
    kinds = [e["kind"] for e in body["logs"]]
    # Newest first; the seed created the repository and granted rita and bob.
    assert kinds == [
        "delete_tag",
        "change_repo_permission",
        "change_repo_permission",
        "create_repo",
    ]
    newest = body["logs"][0]
    assert newest["performer"] == {"kind": "user", "name": "alice", "is_robot": False, "avatar": {}}
    assert newest["metadata"]["tag"] == "latest"
    assert newest["metadata"]["repo"] == "app"
    assert newest["ip"] == "127.0.0.1"
    email.utils.parsedate_to_datetime(newest["datetime"])
    # Entries written by the system have no performer.
    assert "performer" not in body["logs"][1]


async def test_organization_logs_cover_the_namespace(world: World) -> None:
    await world.client.put("/api/v1/organization/acme/robots/r2", headers=world.auth("alice"))
    body = (await world.client.get(ORG_LOGS, headers=world.auth("alice"))).json()
    kinds = [e["kind"] for e in body["logs"]]
    assert kinds[0] == "create_robot"
    assert {"create_robot", "org_create", "create_repo", "change_repo_permission"} <= set(kinds)
    assert all(e["metadata"].get("namespace") == "acme" for e in body["logs"])


async def test_time_window(world: World) -> None:
    await add_entry(world, dt.datetime(2024, 3, 9, 23, 59, tzinfo=dt.UTC), marker="before")
    await add_entry(world, dt.datetime(2024, 3, 10, 0, 0, tzinfo=dt.UTC), marker="first")
    await add_entry(world, dt.datetime(2024, 3, 12, 23, 59, tzinfo=dt.UTC), marker="last")
    await add_entry(world, dt.datetime(2024, 3, 13, 0, 0, tzinfo=dt.UTC), marker="after")
    params = {"starttime": "03/10/2024", "endtime": "03/12/2024"}
    body = (await world.client.get(REPO_LOGS, params=params, headers=world.auth("alice"))).json()
    assert [e["metadata"]["marker"] for e in body["logs"]] == ["last", "first"]
    assert body["start_time"] == "Sun, 10 Mar 2024 00:00:00 -0000"
    assert body["end_time"] == "Wed, 13 Mar 2024 00:00:00 -0000"
    # Old entries are outside the default window (the last seven days).
    default = (await world.client.get(REPO_LOGS, headers=world.auth("alice"))).json()
    assert all("marker" not in e["metadata"] for e in default["logs"])
    backwards = await world.client.get(
        REPO_LOGS,
        params={"starttime": "03/12/2024", "endtime": "03/01/2024"},
        headers=world.auth("alice"),
    )
    assert backwards.status_code == 400


async def test_pagination(world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    for i in range(25):
        await add_entry(world, now - dt.timedelta(minutes=i), marker=str(i))
    first = (await world.client.get(REPO_LOGS, headers=world.auth("alice"))).json()
    assert len(first["logs"]) == 20
    assert first["next_page"]
    second = await world.client.get(
        REPO_LOGS, params={"next_page": first["next_page"]}, headers=world.auth("alice")
    )
    rest = second.json()
    assert "next_page" not in rest
    total = first["logs"] + rest["logs"]
    assert len(total) == 25 + 3  # plus the seed's create_repo and two grants
    bad = await world.client.get(REPO_LOGS, params={"next_page": "!!"}, headers=world.auth("alice"))
    assert bad.status_code == 400


async def test_other_namespaces_and_repositories_are_excluded(world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    await add_entry(world, now, namespace="other", repository="app", marker="other-ns")
    await add_entry(world, now, repository="different", marker="other-repo")
    repo = (await world.client.get(REPO_LOGS, headers=world.auth("alice"))).json()
    assert not {"other-ns", "other-repo"} & {e["metadata"].get("marker") for e in repo["logs"]}
    org = (await world.client.get(ORG_LOGS, headers=world.auth("alice"))).json()
    markers = {e["metadata"].get("marker") for e in org["logs"]}
    assert "other-repo" in markers
    assert "other-ns" not in markers


async def test_logs_need_admin(world: World) -> None:
    api = world.client
    for user in ("rita", "bob", "eve"):
        assert (await api.get(REPO_LOGS, headers=world.auth(user))).status_code == 403
        assert (await api.get(ORG_LOGS, headers=world.auth(user))).status_code == 403
    assert (await api.get(REPO_LOGS)).status_code == 401
    assert (await api.get(ORG_LOGS)).status_code == 401
    token = await world.token("alice", [sc.REPO_WRITE, sc.USER_ADMIN])
    assert (await api.get(REPO_LOGS, headers=bearer(token))).status_code == 403
    assert (await api.get(ORG_LOGS, headers=bearer(token))).status_code == 403
    for url in (REPO_LOGS, ORG_LOGS):
        assert (await api.get(url, headers=world.auth("admin"))).status_code == 200
    missing = await api.get("/api/v1/organization/alice/logs", headers=world.auth("admin"))
    assert missing.status_code == 404
