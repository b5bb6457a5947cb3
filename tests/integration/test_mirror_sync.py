"""Mirror from a real docker-registry into Moorage (worker in-process), pull back with skopeo.

Covers the image formats (single-arch OCI, Docker schema 2, multi-arch index), the
architecture filter with sparse indexes, tags moved and deleted upstream, and pulling the
mirrored tags out of Moorage with skopeo as a user who may only read.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from moorage.db.engine import Database
from tests.integration.conftest import Clients
from tests.integration.mirror_helpers import (
    READER,
    InProcessMoorage,
    create_mirror,
    delete_upstream_tag,
    in_process_moorage,
    local_manifest,
    local_tags,
    push_upstream,
    sync_and_wait,
    upstream_digest,
    upstream_manifest,
)
from tests.support.consistency import check_consistency
from tests.support.ocilayout import resolve_ref, write_image, write_index
from tests.support.server import ServerHandle, run_docker_registry

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def upstream(tmp_path: Path, docker_registry_binary: str) -> Any:
    with run_docker_registry(tmp_path) as handle:
        yield handle


@pytest.fixture
async def moorage(base_config: dict[str, Any], database: Database) -> Any:
    async with in_process_moorage(base_config, database, http=True) as handle:
        yield handle


async def skopeo_pull_raw(clients: Clients, moorage: InProcessMoorage, ref: str) -> bytes:
    """``skopeo inspect --raw`` of admin/<ref> from Moorage, as the read-only user."""
    result = await asyncio.to_thread(
        clients.skopeo,
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        ":".join(READER),
        f"docker://{moorage.host}/admin/{ref}",
    )
    return result.stdout


async def assert_same_as_upstream(
    moorage: InProcessMoorage, upstream: ServerHandle, repo: str, tag: str, media_type: str
) -> str:
    """Local tag serves the upstream manifest bytes, digest and type; returns the digest."""
    theirs = upstream_manifest(upstream, f"library/{repo}", tag)
    ours = await local_manifest(moorage.client, repo, tag)
    assert ours.status_code == 200, ours.text
    assert ours.content == theirs.content
    assert ours.headers["Docker-Content-Digest"] == theirs.headers["Docker-Content-Digest"]
    assert ours.headers["Content-Type"] == theirs.headers["Content-Type"] == media_type
    return str(theirs.headers["Docker-Content-Digest"])


async def assert_mirror_audit(client: Any, tags: list[str]) -> None:
    """The sync's audit entries, with Quay's kinds and metadata keys (newest first)."""
    response = await client.get("/api/v1/repository/admin/app/logs")
    assert response.status_code == 200, response.text
    logs = [e for e in response.json()["logs"] if e["kind"].startswith("repo_mirror_sync")]
    kinds = [e["kind"] for e in reversed(logs)]
    assert kinds == [
        "repo_mirror_sync_started",
        *["repo_mirror_sync_tag_success"] * len(tags),
        "repo_mirror_sync_success",
    ]
    for entry in logs:
        assert {"verb", "message", "tag", "tags", "stdout", "stderr"} <= set(entry["metadata"])
    assert sorted(e["metadata"]["tag"] for e in logs[1:-1]) == tags
    assert logs[0]["metadata"]["tags"] == ", ".join(tags)


async def test_mirror_formats_and_pull_with_skopeo(
    clients: Clients, upstream: ServerHandle, moorage: InProcessMoorage, tmp_path: Path
) -> None:
    rng = random.Random(7)
    layout = tmp_path / "layout"
    write_image(layout, "1.0", layer_sizes=(20_000, 30_000), rng=rng)
    write_image(layout, "docker", layer_sizes=(25_000,), rng=rng)
    write_index(layout, "multi", layer_sizes=(10_000,), rng=rng)
    write_image(layout, "skipme", layer_sizes=(1000,), rng=rng)
    push_upstream(clients, upstream, layout, "1.0", "library/app")
    push_upstream(clients, upstream, layout, "docker", "library/app", v2s2=True)
    push_upstream(clients, upstream, layout, "multi", "library/app", all_images=True)
    push_upstream(clients, upstream, layout, "skipme", "library/app")

    client = moorage.client
    await create_mirror(client, f"{upstream.host}/library/app", "app", ["1.*", "docker", "multi"])
    result = await sync_and_wait(client, "app")
    assert result["sync_status"] == "SUCCESS", result
    assert result["last_sync"]["tags_copied"] == 3
    assert result["last_error"] is None
    assert await local_tags(client, "app") == ["1.0", "docker", "multi"]

    await assert_same_as_upstream(moorage, upstream, "app", "1.0", OCI_MANIFEST)
    await assert_same_as_upstream(moorage, upstream, "app", "docker", DOCKER_MANIFEST)
    index = await assert_same_as_upstream(moorage, upstream, "app", "multi", OCI_INDEX)
    children = json.loads(upstream_manifest(upstream, "library/app", index).content)["manifests"]
    assert len(children) == 2
    for child in children:  # without a filter every platform is stored
        stored = await local_manifest(client, "app", child["digest"])
        assert stored.status_code == 200, child

    # Pull everything back out with skopeo, as a user with read access only.
    for tag in ("1.0", "docker", "multi"):
        raw = await skopeo_pull_raw(clients, moorage, f"app:{tag}")
        assert raw == upstream_manifest(upstream, "library/app", tag).content
    out = tmp_path / "out"
    for tag, extra in (("1.0", []), ("docker", []), ("multi", ["--all"])):
        await asyncio.to_thread(
            clients.skopeo,
            "copy",
            "--preserve-digests",
            *extra,
            "--src-tls-verify=false",
            "--src-creds",
            ":".join(READER),
            f"docker://{moorage.host}/admin/app:{tag}",
            f"oci:{out}:{tag}",
        )
        assert resolve_ref(out, tag)["digest"] == upstream_digest(upstream, "library/app", tag)
    anonymous = await asyncio.to_thread(
        clients.skopeo,
        "inspect",
        "--raw",
        "--tls-verify=false",
        f"docker://{moorage.host}/admin/app:1.0",
        check=False,
    )
    assert anonymous.returncode != 0  # the repository is private

    # A no-op re-sync copies nothing (unchanged manifests are skipped by digest).
    again = await sync_and_wait(client, "app")
    assert again["sync_status"] == "SUCCESS", again
    assert again["last_sync"]["tags_skipped"] == 3
    assert again["last_sync"]["bytes"] == 0
    report = await check_consistency(moorage.db, moorage.storage, ["admin/app"])
    assert report.problems == []
    assert report.tags == 3
    assert report.sparse_children == []


async def test_mirror_architecture_filter(
    clients: Clients, upstream: ServerHandle, moorage: InProcessMoorage, tmp_path: Path
) -> None:
    rng = random.Random(8)
    layout = tmp_path / "layout"
    write_index(layout, "multi", architectures=("amd64", "arm64"), layer_sizes=(12_000,), rng=rng)
    write_image(layout, "amd64-only", layer_sizes=(9_000,), architecture="amd64", rng=rng)
    write_image(layout, "arm64-only", layer_sizes=(9_000,), architecture="arm64", rng=rng)
    push_upstream(clients, upstream, layout, "multi", "library/app", all_images=True)
    push_upstream(clients, upstream, layout, "amd64-only", "library/app")
    push_upstream(clients, upstream, layout, "arm64-only", "library/app")

    client = moorage.client
    await create_mirror(
        client, f"{upstream.host}/library/app", "app", ["*"], architecture_filter=["arm64"]
    )
    result = await sync_and_wait(client, "app")
    assert result["sync_status"] == "SUCCESS", result
    assert result["architecture_filter"] == ["arm64"]
    assert result["last_sync"]["tags_copied"] == 2
    assert result["last_sync"]["tags_skipped"] == 1
    # The single-arch amd64 image is outside the filter: not copied at all.
    assert await local_tags(client, "app") == ["arm64-only", "multi"]
    await assert_mirror_audit(client, ["amd64-only", "arm64-only", "multi"])
    assert (await local_manifest(client, "app", "amd64-only")).status_code == 404
    amd64_only = upstream_digest(upstream, "library/app", "amd64-only")
    assert (await local_manifest(client, "app", amd64_only)).status_code == 404

    # The index keeps its upstream bytes and digest; only the arm64 child is stored.
    index_digest = await assert_same_as_upstream(moorage, upstream, "app", "multi", OCI_INDEX)
    entries = json.loads(upstream_manifest(upstream, "library/app", index_digest).content)
    by_arch = {e["platform"]["architecture"]: e["digest"] for e in entries["manifests"]}
    arm64 = await local_manifest(client, "app", by_arch["arm64"])
    assert arm64.status_code == 200
    assert arm64.content == upstream_manifest(upstream, "library/app", by_arch["arm64"]).content
    assert (await local_manifest(client, "app", by_arch["amd64"])).status_code == 404

    # skopeo reads the sparse index as is, and copies the arm64 image out of it.
    raw = await skopeo_pull_raw(clients, moorage, "app:multi")
    assert raw == upstream_manifest(upstream, "library/app", "multi").content
    out = tmp_path / "out"
    await asyncio.to_thread(
        clients.skopeo,
        "--override-arch",
        "arm64",
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        ":".join(READER),
        f"docker://{moorage.host}/admin/app:multi",
        f"oci:{out}:arm64",
    )
    assert resolve_ref(out, "arm64")["digest"] == by_arch["arm64"]

    report = await check_consistency(moorage.db, moorage.storage, ["admin/app"])
    assert report.problems == []
    assert len(report.sparse_children) == 1
    assert report.sparse_children[0].endswith(by_arch["amd64"])

    # Widening the filter fills in what is now wanted, although the index digest is unchanged.
    response = await client.put(
        "/api/v1/repository/admin/app/mirror", json={"architecture_filter": ["amd64", "arm64"]}
    )
    assert response.status_code == 201, response.text
    widened = await sync_and_wait(client, "app")
    assert widened["sync_status"] == "SUCCESS", widened
    assert await local_tags(client, "app") == ["amd64-only", "arm64-only", "multi"]
    assert (await local_manifest(client, "app", by_arch["amd64"])).status_code == 200
    report = await check_consistency(moorage.db, moorage.storage, ["admin/app"])
    assert report.problems == []
    assert report.sparse_children == []


async def test_moved_and_deleted_tags_follow_upstream(
    clients: Clients, upstream: ServerHandle, moorage: InProcessMoorage, tmp_path: Path
) -> None:
    rng = random.Random(9)
    layout = tmp_path / "layout"
    write_image(layout, "v1", layer_sizes=(15_000,), rng=rng)
    write_image(layout, "v2", layer_sizes=(16_000,), rng=rng)
    write_image(layout, "old", layer_sizes=(17_000,), rng=rng)
    push_upstream(clients, upstream, layout, "v1", "library/app", tag="stable")
    push_upstream(clients, upstream, layout, "old", "library/app")
    push_upstream(clients, upstream, layout, "v1", "library/app", tag="keep")

    client = moorage.client
    await create_mirror(client, f"{upstream.host}/library/app", "app", ["*"])
    first = await sync_and_wait(client, "app")
    assert first["sync_status"] == "SUCCESS", first
    assert await local_tags(client, "app") == ["keep", "old", "stable"]
    v1 = upstream_digest(upstream, "library/app", "stable")

    # Upstream: "stable" moves to a new image, "old" is deleted, "keep" stays.
    push_upstream(clients, upstream, layout, "v2", "library/app", tag="stable")
    v2 = upstream_digest(upstream, "library/app", "stable")
    assert v2 != v1
    delete_upstream_tag(upstream, "library/app", "old")

    second = await sync_and_wait(client, "app")
    assert second["sync_status"] == "SUCCESS", second
    stats = second["last_sync"]
    assert (stats["tags_copied"], stats["tags_skipped"], stats["tags_deleted"]) == (1, 1, 1)
    assert await local_tags(client, "app") == ["keep", "stable"]
    stable = await local_manifest(client, "app", "stable")
    assert stable.headers["Docker-Content-Digest"] == v2
    keep = await local_manifest(client, "app", "keep")
    assert keep.headers["Docker-Content-Digest"] == v1
    assert (await local_manifest(client, "app", "old")).status_code == 404

    # The tag history (Quay's /api/v1 tag endpoint) shows the move: v1 ended, v2 alive.
    response = await client.get("/api/v1/repository/admin/app/tag/?specificTag=stable")
    assert response.status_code == 200, response.text
    history = {t["manifest_digest"]: t for t in response.json()["tags"]}
    assert set(history) == {v1, v2}
    assert history[v1].get("end_ts") is not None
    assert history[v2].get("end_ts") is None
    report = await check_consistency(moorage.db, moorage.storage, ["admin/app"])
    assert report.problems == []
    assert report.tags == 2
