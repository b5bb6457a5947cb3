"""sync-cancel in the middle of a large layer: prompt, clean, and completed tags stay.

A slow TCP proxy between Moorage and docker-registry makes a ~64 MiB layer take ~20 s, so
the cancel lands while its bytes are streaming into storage.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from moorage.db.engine import Database
from moorage.db.models import Blob, MirrorRun
from moorage.oci.digest import Digest
from moorage.storage import paths
from tests.integration.conftest import Clients
from tests.integration.mirror_helpers import (
    create_mirror,
    delete_upstream_tag,
    get_mirror,
    in_process_moorage,
    list_runs,
    local_tags,
    push_upstream,
    sync_and_wait,
    sync_now,
    wait_finished,
    wait_for,
)
from tests.support.consistency import check_consistency, staging_leftovers
from tests.support.faultproxy import run_fault_proxy
from tests.support.ocilayout import image_layers, write_image
from tests.support.server import run_docker_registry

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
LARGE = 64 * 1024 * 1024
RATE = LARGE / 20  # bytes per second and connection: the large layer needs ~20 s
MiB = 1024 * 1024
# More than one S3 multipart part (16 MiB): the cancel must abort a real multipart upload.
STREAMED_BEFORE_CANCEL = 18 * MiB


async def test_cancel_during_a_large_layer(
    clients: Clients,
    base_config: dict[str, Any],
    database: Database,
    tmp_path: Path,
    docker_registry_binary: str,
) -> None:
    rng = random.Random(41)
    layout = tmp_path / "layout"
    write_image(layout, "a-small", layer_sizes=(20_000,), rng=rng)
    large_manifest = write_image(layout, "b-large", layer_sizes=(LARGE,), rng=rng, compresslevel=0)
    large_layer = image_layers(layout, large_manifest)[0].digest
    with run_docker_registry(tmp_path) as upstream:
        push_upstream(clients, upstream, layout, "a-small", "library/app")
        push_upstream(clients, upstream, layout, "b-large", "library/app")
        with run_fault_proxy(upstream.port, rate=RATE) as proxy:
            async with in_process_moorage(base_config, database) as moorage:
                client = moorage.client
                await create_mirror(client, f"{proxy.host}/library/app", "app", ["*"])
                await sync_now(client, "app")

                async def small_done_and_large_flowing() -> bool:
                    tags = await local_tags(client, "app")
                    return tags == ["a-small"] and proxy.bytes_down > STREAMED_BEFORE_CANCEL

                await wait_for(small_done_and_large_flowing, 30, "the large layer to stream")

                # The run's byte counter moves while the large layer streams (the heartbeat
                # writes it at most once a second), not only when a blob is finished.
                async def counting_the_large_layer() -> bool:
                    runs = await list_runs(client, "app")
                    return bool(runs[0]["status"] == "running" and runs[0]["bytes"] > 16 * MiB)

                await wait_for(counting_the_large_layer, 5, "live bytes of the large layer", 0.2)
                # The layer is being staged right now (a temporary file, or an S3 multipart
                # upload with parts): this is what the cancel must clean up.
                assert await staging_leftovers(moorage.storage) != []
                response = await client.post("/api/v1/repository/admin/app/mirror/sync-cancel")
                assert response.status_code == 204, response.text
                assert (await get_mirror(client, "app"))["sync_status"] == "CANCEL"

                async def run_cancelled() -> dict[str, Any] | None:
                    runs = await list_runs(client, "app")
                    return runs[0] if runs[0]["status"] == "cancelled" else None

                run = await wait_for(run_cancelled, 5, "the run to be cancelled", 0.1)
                assert run["finished"] is not None
                assert run["tags_copied"] == 1
                # The download really stopped, well before the layer was complete.
                await wait_for(_is_zero(proxy), 5, "the upstream connections to close", 0.1)
                stopped_at = proxy.bytes_down
                assert stopped_at < LARGE // 2
                body = await get_mirror(client, "app")
                assert (body["sync_status"], body["sync_retries_remaining"]) == ("CANCEL", 0)
                assert body["last_sync"]["status"] == "cancelled"

                # Completed tags stay; nothing of the cancelled image is visible or left over.
                assert await local_tags(client, "app") == ["a-small"]
                blob = await client.get(f"/v2/admin/app/blobs/{large_layer}")
                assert blob.status_code == 404
                storage = moorage.storage
                assert await storage.stat(paths.blob_key(Digest.parse(large_layer))) is None
                async with database.transaction(readonly=True) as session:
                    row = await session.execute(select(Blob.id).where(Blob.digest == large_layer))
                    assert row.scalar_one_or_none() is None
                assert await staging_leftovers(storage) == []
                report = await check_consistency(database, storage, ["admin/app"])
                assert report.problems == []
                assert report.tags == 1
                assert proxy.bytes_down == stopped_at  # and nothing resumed in the background


def _is_zero(proxy: Any) -> Any:
    async def check() -> bool:
        return bool(proxy.active == 0)

    return check


async def test_sync_now_right_after_a_cancel(
    clients: Clients,
    base_config: dict[str, Any],
    database: Database,
    tmp_path: Path,
    docker_registry_binary: str,
) -> None:
    """Quay's recovery, "cancel then sync-now", sent while the cancelled copy still stops: the
    cancelled sync prunes nothing, and the new one starts only after it ended, and completes."""
    rng = random.Random(42)
    layout = tmp_path / "layout"
    write_image(layout, "a-small", layer_sizes=(20_000,), rng=rng)
    write_image(layout, "c-obsolete", layer_sizes=(20_000,), rng=rng)
    write_image(layout, "b-large", layer_sizes=(16 * MiB,), rng=rng, compresslevel=0)
    with run_docker_registry(tmp_path) as upstream:
        push_upstream(clients, upstream, layout, "a-small", "library/app")
        push_upstream(clients, upstream, layout, "c-obsolete", "library/app")
        with run_fault_proxy(upstream.port, rate=2 * MiB) as proxy:
            async with in_process_moorage(base_config, database) as moorage:
                client = moorage.client
                await create_mirror(client, f"{proxy.host}/library/app", "app", ["*"])
                first = await sync_and_wait(client, "app")
                assert first["sync_status"] == "SUCCESS", first
                assert await local_tags(client, "app") == ["a-small", "c-obsolete"]
                delete_upstream_tag(upstream, "library/app", "c-obsolete")
                push_upstream(clients, upstream, layout, "b-large", "library/app")
                flowing_from = proxy.bytes_down
                await sync_now(client, "app")

                async def flowing() -> bool:
                    return proxy.bytes_down - flowing_from > 3 * MiB

                await wait_for(flowing, 30, "the large layer to stream")
                response = await client.post("/api/v1/repository/admin/app/mirror/sync-cancel")
                assert response.status_code == 204, response.text
                cancelled = (await list_runs(client, "app"))[0]
                # Let the cancelled copy finish its layer at once if it does not stop.
                proxy.rate = None
                await sync_now(client, "app")
                body = await wait_finished(client, "app", cancelled["id"], timeout=60)
                assert body["sync_status"] == "SUCCESS", body
                assert await local_tags(client, "app") == ["a-small", "b-large"]
                await asyncio.sleep(1.5)  # nothing else runs afterwards
                newest, old = (await list_runs(client, "app"))[:2]
                assert (old["id"], old["status"]) == (cancelled["id"], "cancelled")
                assert old["tags_deleted"] == 0  # no pruning after a cancel
                assert (newest["status"], newest["trigger"]) == ("succeeded", "sync_now")
                assert newest["tags_deleted"] == 1
                body = await get_mirror(client, "app")
                assert (body["sync_status"], body["sync_retries_remaining"]) == ("SUCCESS", 3)
    async with database.transaction(readonly=True) as session:
        rows = (await session.execute(select(MirrorRun).order_by(MirrorRun.id))).scalars().all()
    assert [r.status for r in rows] == ["succeeded", "cancelled", "succeeded"]
    assert rows[1].finished_at is not None
    assert rows[1].finished_at <= rows[2].started_at  # the two runs never overlapped
