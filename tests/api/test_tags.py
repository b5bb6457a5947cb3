"""/api/v1/repository/{ns}/{repo}/tag/: tag history, create/move, delete."""

from __future__ import annotations

import email.utils

import pytest
from sqlalchemy import select

from moorage.db.models import AuditLog, RepositoryState, Visibility
from moorage.services.audit import Actor
from tests.api.conftest import World
from tests.support.images import OCI_INDEX, make_image, make_index, push_image

pytestmark = pytest.mark.anyio
TAGS = "/api/v1/repository/acme/app/tag/"


async def tag_audit(world: World) -> list[tuple[str, dict[str, object]]]:
    async with world.db.transaction(readonly=True) as session:
        rows = await session.execute(
            select(AuditLog)
            .where(AuditLog.kind.in_(["create_tag", "move_tag", "delete_tag"]))
            .order_by(AuditLog.id)
        )
        return [(e.kind, e.metadata_json) for e in rows.scalars()]


async def test_list_tags(world: World) -> None:
    response = await world.client.get(TAGS, headers=world.auth("rita"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["page"] == 1
    assert body["has_additional"] is False
    [tag] = body["tags"]
    assert tag["name"] == "latest"
    assert tag["reversion"] is False
    assert tag["manifest_digest"] == world.digest
    assert tag["is_manifest_list"] is False
    assert tag["size"] > 3072  # config + the two layers of make_image()
    assert isinstance(tag["start_ts"], int)
    assert "end_ts" not in tag
    assert "expiration" not in tag
    modified = email.utils.parsedate_to_datetime(tag["last_modified"])
    assert int(modified.timestamp()) == tag["start_ts"]
    assert tag["last_modified"].endswith(" -0000")


async def test_move_and_delete_keep_history(world: World) -> None:
    api, bob = world.client, world.auth("bob")
    second = await world.push("acme/app", "other")
    moved = await api.put(f"{TAGS}latest", json={"manifest_digest": second}, headers=bob)
    assert moved.status_code == 201, moved.text
    assert moved.json() == "Updated"
    created = await api.put(f"{TAGS}fresh", json={"manifest_digest": world.digest}, headers=bob)
    assert created.status_code == 201
    deleted = await api.delete(f"{TAGS}other", headers=bob)
    assert deleted.status_code == 204
    assert (await api.delete(f"{TAGS}other", headers=bob)).status_code == 404

    history = (await api.get(TAGS, headers=bob)).json()["tags"]
    latest = [t for t in history if t["name"] == "latest"]
    assert [t["manifest_digest"] for t in latest] == [second, world.digest]
    assert "end_ts" not in latest[0]
    assert latest[1]["end_ts"] >= latest[1]["start_ts"]
    assert "expiration" in latest[1]
    other = [t for t in history if t["name"] == "other"]
    assert len(other) == 1
    assert "end_ts" in other[0]

    active = (await api.get(TAGS, params={"onlyActiveTags": "true"}, headers=bob)).json()
    assert sorted(t["name"] for t in active["tags"]) == ["fresh", "latest"]
    specific = await api.get(TAGS, params={"specificTag": "latest"}, headers=bob)
    assert [t["manifest_digest"] for t in specific.json()["tags"]] == [second, world.digest]

    # The registry sees the same state.
    listed = await api.get("/v2/acme/app/tags/list", headers=bob)
    assert listed.json()["tags"] == ["fresh", "latest"]

    assert await tag_audit(world) == [
        (
            "move_tag",
            {
                "username": "bob",
                "tag": "latest",
                "manifest_digest": second,
                "original_manifest_digest": world.digest,
                "namespace": "acme",
                "repo": "app",
                "user-agent": "python-httpx/" + __import__("httpx").__version__,
            },
        ),
        (
            "create_tag",
            {
                "username": "bob",
                "tag": "fresh",
                "manifest_digest": world.digest,
                "original_manifest_digest": None,
                "namespace": "acme",
                "repo": "app",
                "user-agent": "python-httpx/" + __import__("httpx").__version__,
            },
        ),
        (
            "delete_tag",
            {
                "username": "bob",
                "tag": "other",
                "namespace": "acme",
                "repo": "app",
                "user-agent": "python-httpx/" + __import__("httpx").__version__,
            },
        ),
    ]


async def test_retagging_to_the_same_manifest_changes_nothing(world: World) -> None:
    api = world.client
    response = await api.put(
        f"{TAGS}latest", json={"manifest_digest": world.digest}, headers=world.auth("alice")
    )
    assert response.status_code == 201
    assert len((await api.get(TAGS, headers=world.auth("alice"))).json()["tags"]) == 1
    assert await tag_audit(world) == []


async def test_pagination(world: World) -> None:
    api, alice = world.client, world.auth("alice")
    for i in range(4):
        await api.put(f"{TAGS}t{i}", json={"manifest_digest": world.digest}, headers=alice)
    seen: list[str] = []
    for page in (1, 2, 3):
        body = (await api.get(TAGS, params={"limit": 2, "page": page}, headers=alice)).json()
        assert body["page"] == page
        assert body["has_additional"] is (page < 3)
        seen += [t["name"] for t in body["tags"]]
    assert sorted(seen) == ["latest", "t0", "t1", "t2", "t3"]
    # limit is clamped to 1..100 and page to >= 1, as Quay does.
    clamped = (await api.get(TAGS, params={"limit": 0, "page": 0}, headers=alice)).json()
    assert (len(clamped["tags"]), clamped["page"], clamped["has_additional"]) == (1, 1, True)
    big = (await api.get(TAGS, params={"limit": 1000}, headers=alice)).json()
    assert len(big["tags"]) == 5


async def test_index_size_and_kind(world: World) -> None:
    world.client.headers.update(world.auth("alice"))
    child = make_image()
    await push_image(world.client, "acme/app", child, child.digest)
    index = make_index([(child, "amd64")])
    response = await world.client.put(
        "/v2/acme/app/manifests/multi", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status_code == 201, response.text
    body = (await world.client.get(TAGS, params={"specificTag": "multi"})).json()
    [tag] = body["tags"]
    assert tag["is_manifest_list"] is True
    assert tag["size"] == len(index)


async def test_put_tag_errors(world: World) -> None:
    api, alice = world.client, world.auth("alice")
    await world.create_repo("acme/elsewhere")
    foreign = await world.push("acme/elsewhere", "v1")
    not_here = await api.put(f"{TAGS}x", json={"manifest_digest": foreign}, headers=alice)
    assert not_here.status_code == 404
    unknown = await api.put(
        f"{TAGS}x", json={"manifest_digest": "sha256:" + "0" * 64}, headers=alice
    )
    assert unknown.status_code == 404
    garbage = await api.put(f"{TAGS}x", json={"manifest_digest": "nope"}, headers=alice)
    assert garbage.status_code == 404
    bad_tag = await api.put(f"{TAGS}-bad", json={"manifest_digest": world.digest}, headers=alice)
    assert bad_tag.status_code == 400
    expiring = await api.put(f"{TAGS}latest", json={"expiration": 4102444800}, headers=alice)
    assert expiring.status_code == 400
    missing_repo = await api.put(
        "/api/v1/repository/acme/nope/tag/x", json={"manifest_digest": world.digest}, headers=alice
    )
    assert missing_repo.status_code == 404
    # No manifest_digest (e.g. only "expiration": null): nothing to do, as in Quay.
    noop = await api.put(f"{TAGS}latest", json={"expiration": None}, headers=alice)
    assert noop.status_code == 201


async def test_tag_changes_need_write(world: World) -> None:
    api = world.client
    body = {"manifest_digest": world.digest}
    assert (await api.put(f"{TAGS}x", json=body, headers=world.auth("rita"))).status_code == 403
    assert (await api.delete(f"{TAGS}latest", headers=world.auth("rita"))).status_code == 403
    assert (await api.put(f"{TAGS}x", json=body, headers=world.auth("eve"))).status_code == 403
    assert (await api.put(f"{TAGS}x", json=body)).status_code == 401
    assert (await api.get(TAGS, headers=world.auth("eve"))).status_code == 403
    assert (await api.get(TAGS)).status_code == 401


@pytest.mark.parametrize("state", [RepositoryState.READ_ONLY, RepositoryState.MIRROR])
async def test_tag_changes_need_a_normal_repository(world: World, state: RepositoryState) -> None:
    await world.management.repositories.set_state("acme", "app", state, Actor.system())
    api, alice = world.client, world.auth("alice")
    put = await api.put(f"{TAGS}x", json={"manifest_digest": world.digest}, headers=alice)
    assert put.status_code == 503
    assert put.json()["detail"] == f"Repository is in read only or mirror mode: {state.name}"
    assert (await api.delete(f"{TAGS}latest", headers=alice)).status_code == 503
    # Permission is checked first: a reader gets 403, not 503.
    assert (await api.delete(f"{TAGS}latest", headers=world.auth("rita"))).status_code == 403
    assert (await api.get(TAGS, headers=alice)).status_code == 200


async def test_public_repository_tags_are_public(world: World) -> None:
    await world.create_repo("acme/open", Visibility.PUBLIC)
    await world.push("acme/open", "v1")
    response = await world.client.get("/api/v1/repository/acme/open/tag/")
    assert response.status_code == 200
    assert [t["name"] for t in response.json()["tags"]] == ["v1"]
    denied = await world.client.delete("/api/v1/repository/acme/open/tag/v1")
    assert denied.status_code == 401
