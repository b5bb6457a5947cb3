"""Quay's status rules (reference §4.9): retries, the start-date grid, cancel of a queued sync."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest

from moorage.db.engine import Database
from tests.integration.conftest import Clients
from tests.integration.mirror_helpers import (
    create_mirror,
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
from tests.support.ocilayout import write_image
from tests.support.server import ServerHandle, run_docker_registry

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
INTERVAL = 3600
FUTURE_START = "2099-01-01T00:00:17Z"


@pytest.fixture
def upstream(tmp_path: Path, clients: Clients, docker_registry_binary: str) -> Any:
    """docker-registry holding library/app:v1 (library/missing does not exist)."""
    layout = tmp_path / "layout"
    write_image(layout, "v1", layer_sizes=(8_000,), rng=random.Random(31))
    with run_docker_registry(tmp_path) as handle:
        push_upstream(clients, handle, layout, "v1", "library/app")
        yield handle


def parse(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def fmt(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def assert_next_slot(value: str, anchor: dt.datetime, before: dt.datetime) -> None:
    """``value`` is the first point of the grid ``anchor + k * INTERVAL`` after ``before``."""
    start = parse(value)
    now = dt.datetime.now(dt.UTC)
    assert before - dt.timedelta(seconds=2) < start <= now + dt.timedelta(seconds=INTERVAL + 2)
    offset = (start - anchor).total_seconds() % INTERVAL
    assert min(offset, INTERVAL - offset) <= 2, (value, anchor)


async def test_fail_retries_and_success_follow_quay(
    upstream: ServerHandle, base_config: dict[str, Any], database: Database
) -> None:
    missing = f"{upstream.host}/library/missing"
    anchor = parse(FUTURE_START)
    past = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=30)
    async with in_process_moorage(base_config, database) as moorage:
        client = moorage.client
        # Driven by sync-now: the start date is far in the future, so nothing else runs it.
        await create_mirror(client, missing, "flaky", ["*"], sync_start_date=FUTURE_START)
        # Driven by the schedule alone: due since 30 s, upstream repository missing.
        await create_mirror(client, missing, "scheduled", ["*"], sync_start_date=fmt(past))

        seen = []
        for _ in range(3):
            before = dt.datetime.now(dt.UTC)
            body = await sync_and_wait(client, "flaky")
            assert body["sync_status"] == "FAIL", body
            assert body["last_error"]["kind"] == "not_found", body
            seen.append((body["sync_retries_remaining"], body["sync_start_date"]))
        # FAIL: 3 -> 2 -> 1 with the start date unchanged, then back to 3 on the next slot.
        assert seen[0] == (2, FUTURE_START)
        assert seen[1] == (1, FUTURE_START)
        assert seen[2][0] == 3
        assert_next_slot(seen[2][1], anchor, before)

        # One more failure uses a retry again; fixing the source then succeeds, which resets
        # the retries and moves the start date on the grid.
        body = await sync_and_wait(client, "flaky")
        assert (body["sync_status"], body["sync_retries_remaining"]) == ("FAIL", 2)
        response = await client.put(
            "/api/v1/repository/admin/flaky/mirror",
            json={"external_reference": f"{upstream.host}/library/app"},
        )
        assert response.status_code == 201, response.text
        before = dt.datetime.now(dt.UTC)
        body = await sync_and_wait(client, "flaky")
        assert body["sync_status"] == "SUCCESS", body
        assert body["sync_retries_remaining"] == 3
        assert body["last_error"] is None
        assert_next_slot(body["sync_start_date"], parse(seen[2][1]), before)
        assert await local_tags(client, "flaky") == ["v1"]
        runs = await list_runs(client, "flaky")
        assert [r["status"] for r in runs] == ["succeeded"] + ["failed"] * 4
        assert {r["trigger"] for r in runs} == {"sync_now"}

        # The scheduled mirror was retried at once after each failure (status FAIL with
        # retries left is due again), three attempts in all, then it waits for its next slot.
        async def three_failures() -> list[dict[str, Any]] | None:
            runs = await list_runs(client, "scheduled")
            done = [r for r in runs if r["finished"]]
            return runs if len(done) >= 3 else None

        runs = await wait_for(three_failures, 30, "three scheduled failures")
        await asyncio.sleep(2.5)  # two more worker polls: no fourth attempt
        runs = await list_runs(client, "scheduled")
        assert [r["trigger"] for r in reversed(runs)] == ["schedule", "retry", "retry"]
        assert {r["status"] for r in runs} == {"failed"}
        body = await get_mirror(client, "scheduled")
        assert (body["sync_status"], body["sync_retries_remaining"]) == ("FAIL", 3)
        assert_next_slot(body["sync_start_date"], past, past + dt.timedelta(seconds=INTERVAL))


async def test_cancel_of_a_queued_sync_now(
    upstream: ServerHandle, base_config: dict[str, Any], database: Database
) -> None:
    reference = f"{upstream.host}/library/app"
    # No worker yet: both sync-now requests stay queued.
    async with in_process_moorage(base_config, database, worker=False) as moorage:
        client = moorage.client
        await create_mirror(client, reference, "cancelled", ["*"])
        await create_mirror(client, reference, "control", ["*"])
        await sync_now(client, "cancelled")
        await sync_now(client, "control")
        assert (await get_mirror(client, "cancelled"))["sync_status"] == "SYNC_NOW"
        response = await client.post("/api/v1/repository/admin/cancelled/mirror/sync-cancel")
        assert response.status_code == 204, response.text
        body = await get_mirror(client, "cancelled")
        assert (body["sync_status"], body["sync_retries_remaining"]) == ("CANCEL", 0)
        assert body["sync_start_date"] == "2099-01-01T00:00:00Z"
        # Cancel is only allowed while SYNCING or SYNC_NOW.
        again = await client.post("/api/v1/repository/admin/cancelled/mirror/sync-cancel")
        assert again.status_code == 404

    # With a worker polling every second: the control mirror runs, the cancelled one never.
    async with in_process_moorage(base_config, database) as moorage:
        client = moorage.client
        control = await wait_finished(client, "control", 0, timeout=30)
        assert control["sync_status"] == "SUCCESS", control
        await asyncio.sleep(2.5)
        body = await get_mirror(client, "cancelled")
        assert (body["sync_status"], body["sync_retries_remaining"]) == ("CANCEL", 0)
        assert body["last_sync"] is None
        assert await list_runs(client, "cancelled") == []
        assert await local_tags(client, "cancelled") == []

        # sync-now is the way out of CANCEL (one retry, then the normal rules).
        body = await sync_and_wait(client, "cancelled")
        assert (body["sync_status"], body["sync_retries_remaining"]) == ("SUCCESS", 3)
        assert await local_tags(client, "cancelled") == ["v1"]
