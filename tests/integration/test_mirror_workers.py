"""Separate `moorage worker` processes: a worker killed mid-sync, and two workers sharing work.

`moorage serve` runs with REPO_MIRROR_WORKER false (API only); workers are started as their own
processes with the same config file. A slow TCP proxy in front of docker-registry keeps syncs
busy long enough to kill a worker in the middle of one, or to make two workers overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.db.models import MirrorRun
from moorage.services.accounts import AccountService
from moorage.storage.factory import build_driver
from tests.integration.conftest import Clients
from tests.integration.mirror_helpers import (
    bootstrap_accounts,
    create_mirror,
    get_mirror,
    kill_hard,
    list_runs,
    local_tags,
    mirror_config,
    push_upstream,
    run_worker_process,
    sync_now,
    wait_finished,
    wait_for,
)
from tests.support.consistency import ConsistencyReport, check_consistency
from tests.support.faultproxy import run_fault_proxy
from tests.support.ocilayout import write_image
from tests.support.server import ServerHandle, run_docker_registry, run_moorage

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
MiB = 1024 * 1024


@contextlib.asynccontextmanager
async def api_only_moorage(
    base_config: dict[str, Any], database: Database, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[ServerHandle, httpx.AsyncClient]]:
    """`moorage serve` without a worker, and an API client authenticated as admin."""
    defaults = {
        "REPO_MIRROR_WORKER": False,
        "REPO_MIRROR_LEASE_SECONDS": 10,
        "REPO_MIRROR_INTERVAL": 1,
    }
    config = mirror_config(base_config, **{**defaults, **overrides})
    load_settings(None, **config)  # writes the DATA_DIR secrets before any process starts
    headers = await bootstrap_accounts(AccountService(database, []))
    with run_moorage(config, tmp_path / "moorage") as server:
        try:
            async with httpx.AsyncClient(
                base_url=server.url, headers=headers, trust_env=False, timeout=30
            ) as client:
                yield server, client
        finally:
            print(f"--- moorage serve log ---\n{server.log()}")


async def consistency(base_config: dict[str, Any], database: Database) -> ConsistencyReport:
    storage = build_driver(load_settings(None, **base_config))
    try:
        return await check_consistency(database, storage)
    finally:
        await storage.close()


def show_log(path: Path) -> None:
    print(f"--- {path.name} ---\n{path.read_text(errors='replace')[-6000:]}")


async def test_worker_killed_mid_sync_is_taken_over(
    clients: Clients,
    base_config: dict[str, Any],
    database: Database,
    tmp_path: Path,
    docker_registry_binary: str,
) -> None:
    rng = random.Random(51)
    layout = tmp_path / "layout"
    write_image(layout, "a-small", layer_sizes=(20_000,), rng=rng)
    write_image(layout, "b-large", layer_sizes=(16 * MiB,), rng=rng, compresslevel=0)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    with (
        run_docker_registry(tmp_path) as upstream,
        run_fault_proxy(upstream.port, rate=1 * MiB) as proxy,
    ):
        push_upstream(clients, upstream, layout, "a-small", "library/app")
        push_upstream(clients, upstream, layout, "b-large", "library/app")
        async with api_only_moorage(base_config, database, tmp_path) as (server, client):
            await create_mirror(client, f"{proxy.host}/library/app", "app", ["*"])
            try:
                with run_worker_process(server.config_path, logs[0]) as first:
                    await sync_now(client, "app")

                    async def copying() -> bool:
                        status = (await get_mirror(client, "app"))["sync_status"]
                        return status == "SYNCING" and proxy.bytes_down > 3 * MiB

                    await wait_for(copying, 30, "the first worker to copy the large layer")
                    kill_hard(first)
                killed_at = time.monotonic()
                (abandoned,) = await list_runs(client, "app")
                assert (abandoned["status"], abandoned["trigger"]) == ("running", "sync_now")
                assert (await get_mirror(client, "app"))["sync_status"] == "SYNCING"

                proxy.rate = None  # the second attempt may go at full speed
                with run_worker_process(server.config_path, logs[1]):
                    body = await wait_finished(client, "app", abandoned["id"], timeout=60)
                took = time.monotonic() - killed_at
            finally:
                for log in logs:
                    if log.exists():
                        show_log(log)

            assert body["sync_status"] == "SUCCESS", body
            assert took < 60
            newest, old = await list_runs(client, "app")
            assert old["id"] == abandoned["id"]
            assert (old["status"], old["error_kind"]) == ("failed", "worker_lost")
            assert old["finished"] is not None
            assert (newest["status"], newest["trigger"]) == ("succeeded", "takeover")
            assert newest["tags_copied"] + newest["tags_skipped"] == 2
            assert await local_tags(client, "app") == ["a-small", "b-large"]

        report = await consistency(base_config, database)
        assert report.problems == []
        assert report.tags == 2
        assert report.blob_bytes > 16 * MiB


@pytest.mark.parametrize("backend", ["postgres-s3"])  # several workers need PostgreSQL
async def test_two_workers_never_run_one_mirror_twice(
    clients: Clients,
    base_config: dict[str, Any],
    database: Database,
    tmp_path: Path,
    docker_registry_binary: str,
) -> None:
    rng = random.Random(52)
    layout = tmp_path / "layout"
    repos = [f"app{n}" for n in range(6)]
    for repo in repos:
        write_image(layout, repo, layer_sizes=(1 * MiB,), rng=rng, compresslevel=0)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    with (
        run_docker_registry(tmp_path) as upstream,
        run_fault_proxy(upstream.port, rate=MiB / 2) as proxy,  # ~2 s per sync
    ):
        for repo in repos:
            push_upstream(clients, upstream, layout, repo, f"library/{repo}", tag="latest")
        async with api_only_moorage(
            base_config, database, tmp_path, REPO_MIRROR_MAX_CONCURRENT_SYNCS=2
        ) as (server, client):
            for repo in repos:
                await create_mirror(client, f"{proxy.host}/library/{repo}", repo, ["latest"])
            try:
                with (
                    run_worker_process(server.config_path, logs[0]),
                    run_worker_process(server.config_path, logs[1]),
                ):
                    for repo in repos:
                        await sync_now(client, repo)
                    bodies = [await wait_finished(client, repo, 0, timeout=60) for repo in repos]
            finally:
                for log in logs:
                    show_log(log)
            assert [b["sync_status"] for b in bodies] == ["SUCCESS"] * 6, bodies
            for repo in repos:
                assert await local_tags(client, repo) == ["latest"]

    async with database.transaction(readonly=True) as session:
        runs = (await session.execute(select(MirrorRun))).scalars().all()
    by_config: dict[int, list[MirrorRun]] = defaultdict(list)
    for run in runs:
        by_config[run.config_id].append(run)
    assert len(by_config) == 6
    for config_runs in by_config.values():
        config_runs.sort(key=lambda r: r.started_at)
        assert all(r.finished_at is not None for r in config_runs)
        assert config_runs[-1].status == "succeeded"
        for earlier, later in itertools.pairwise(config_runs):
            assert earlier.finished_at is not None
            assert earlier.finished_at <= later.started_at, (earlier.id, later.id)
    # Both workers took part (each may run only two syncs at once, each sync takes ~2 s).
    assert len({run.worker for run in runs}) == 2
    report = await consistency(base_config, database)
    assert report.problems == []
    assert report.tags == 6


@pytest.mark.parametrize("backend", ["postgres-s3"], indirect=True)
async def test_sync_now_wakes_a_separate_worker_at_once(
    clients: Clients,
    base_config: dict[str, Any],
    database: Database,
    tmp_path: Path,
    docker_registry_binary: str,
) -> None:
    """On PostgreSQL a sync-now sent to an API node wakes a `moorage worker` through
    LISTEN/NOTIFY: the sync starts within seconds, not at the worker's next poll (an hour)."""
    layout = tmp_path / "layout"
    write_image(layout, "v1", layer_sizes=(20_000,), rng=random.Random(53))
    with run_docker_registry(tmp_path) as upstream:
        push_upstream(clients, upstream, layout, "v1", "library/wake", tag="v1")
        hourly = {"REPO_MIRROR_INTERVAL": 3600}
        async with api_only_moorage(base_config, database, tmp_path, **hourly) as (server, client):
            await create_mirror(client, f"{upstream.host}/library/wake", "wake", ["v1"])
            with run_worker_process(server.config_path, tmp_path / "worker.log"):
                await asyncio.sleep(1)  # past its first poll: only a notification wakes it now
                for attempt in range(2):  # twice: the listener stays up after a wake-up
                    runs = await list_runs(client, "wake")
                    started = time.monotonic()
                    await sync_now(client, "wake")
                    after = runs[0]["id"] if runs else 0
                    body = await wait_finished(client, "wake", after_run=after, timeout=15)
                    assert body["sync_status"] == "SUCCESS", (attempt, body)
                    assert time.monotonic() - started < 15
            assert await local_tags(client, "wake") == ["v1"]
