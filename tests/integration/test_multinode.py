"""Scale-out: two `moorage serve --no-worker` nodes and two `moorage worker` processes.

All four processes share one config (one PostgreSQL database, one moto S3 bucket, explicit
secrets, JSON logs) and run on 127.0.0.1; an upstream docker-registry feeds the mirrors. The
cluster is started once for this module. What it shows:

- an image pushed through node A is pulled through node B, byte for byte;
- one chunked upload spread over both nodes (POST on A, PATCH on B, PATCH on A, PUT on B), with
  one bearer token: both nodes sit behind one "load balancer" name (the Host header);
- ten mirrors synced at once by the two workers, each run exactly once;
- a worker SIGKILLed in the middle of a sync: the other worker takes the mirror over;
- afterwards nothing is lost (tests/support/consistency.py) and no mirror ever had two runs
  overlapping in time.

PostgreSQL is required: without it the module is skipped with a message (an error under CI=true).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.db.models import MirrorConfig, MirrorRun, Repository
from moorage.services.accounts import AccountService
from moorage.storage.factory import build_driver
from tests.integration.conftest import DOCKER_REGISTRY, Clients, _truncate_postgres
from tests.integration.mirror_helpers import (
    ADMIN,
    bootstrap_accounts,
    create_mirror,
    get_mirror,
    kill_hard,
    list_runs,
    local_tags,
    push_upstream,
    run_worker_process,
    sync_now,
    wait_finished,
    wait_for,
)
from tests.support.consistency import check_consistency
from tests.support.faultproxy import FaultProxy, run_fault_proxy
from tests.support.ocilayout import blob_path, referenced_blobs, sha256_digest, write_image
from tests.support.s3server import s3_storage_params
from tests.support.server import ServerHandle, run_docker_registry, run_moorage

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
MiB = 1024 * 1024
NO_TLS = "--tls-verify=false"
LB_HOST = "registry.lb.test"  # what clients would call the load balancer in front of A and B
MIRRORS = [f"many{n}" for n in range(10)]


@dataclass
class Cluster:
    config: dict[str, Any]
    nodes: list[ServerHandle]
    workers: list[Any]  # subprocess.Popen of `moorage worker`
    worker_logs: list[Path]
    upstream: ServerHandle
    proxy: FaultProxy
    api_headers: dict[str, str]
    stack: contextlib.ExitStack
    layout: Path

    def start_worker(self) -> None:
        log = self.layout.parent / f"worker-{len(self.worker_logs) + 1}.log"
        process = self.stack.enter_context(run_worker_process(self.nodes[0].config_path, log))
        self.workers.append(process)
        self.worker_logs.append(log)

    def worker_pid(self, owner: str) -> int:
        return int(owner.split(":")[1])  # worker ids are host:pid:random

    def logs(self) -> str:
        parts = [f"--- node {n.url} ---\n{n.log(3000)}" for n in self.nodes]
        parts += [
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}" for p in self.worker_logs
        ]
        return "\n".join(parts)


@pytest.fixture(scope="module")
def cluster(
    pg_database: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if not Path(DOCKER_REGISTRY).exists():
        message = f"{DOCKER_REGISTRY} is not installed (Debian package docker-registry)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (required under CI=true)")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("multinode")
    asyncio.run(_truncate_postgres(pg_database))
    config: dict[str, Any] = {
        "DATA_DIR": root / "data",
        "DB_URI": pg_database,
        "DISTRIBUTED_STORAGE_CONFIG": {
            "s3": ["S3Storage", s3_storage_params(s3_endpoint, f"multi-{uuid.uuid4().hex[:12]}")]
        },
        "DISTRIBUTED_STORAGE_PREFERENCE": ["s3"],
        # Several nodes: secrets are set explicitly and identically, never generated per node.
        "DATABASE_SECRET_KEY": secrets.token_urlsafe(48),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"],
        "REPO_MIRROR_INTERVAL": 1,
        "REPO_MIRROR_LEASE_SECONDS": 10,
        "REPO_MIRROR_MAX_CONCURRENT_SYNCS": 3,  # ten mirrors need both workers
        "LOG_FORMAT": "json",
    }
    database = Database(pg_database)
    try:
        headers = asyncio.run(bootstrap_accounts(AccountService(database, [])))
    finally:
        asyncio.run(database.dispose())
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(run_docker_registry(root))
        proxy = stack.enter_context(run_fault_proxy(upstream.port))
        nodes = [
            stack.enter_context(run_moorage(config, root / name, ["--no-worker"]))
            for name in ("node-a", "node-b")
        ]
        layout = root / "layout"
        built = Cluster(config, nodes, [], [], upstream, proxy, headers, stack, layout)
        built.start_worker()
        built.start_worker()
        yield built


@pytest.fixture
def nodes(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster; its logs are printed after each test (pytest shows them on failure)."""
    try:
        yield cluster
    finally:
        print(cluster.logs())


@contextlib.asynccontextmanager
async def api_clients(cluster: Cluster) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=node.url, headers=cluster.api_headers, trust_env=False, timeout=30
                )
            )
            for node in cluster.nodes
        ]


async def mirror_runs(cluster: Cluster) -> dict[str, list[MirrorRun]]:
    """Every run of every mirror, by repository name, oldest first."""
    database = Database(cluster.config["DB_URI"])
    try:
        async with database.transaction(readonly=True) as session:
            rows = await session.execute(
                select(Repository.name, MirrorRun)
                .join(MirrorConfig, MirrorConfig.id == MirrorRun.config_id)
                .join(Repository, Repository.id == MirrorConfig.repository_id)
            )
            by_repo: dict[str, list[MirrorRun]] = defaultdict(list)
            for name, run in rows.all():
                by_repo[name].append(run)
    finally:
        await database.dispose()
    for runs in by_repo.values():
        runs.sort(key=lambda r: r.started_at)
    return by_repo


def assert_never_overlapping(by_repo: dict[str, list[MirrorRun]]) -> None:
    for name, runs in by_repo.items():
        for earlier, later in itertools.pairwise(runs):
            assert earlier.finished_at is not None, (name, earlier.id)
            assert earlier.finished_at <= later.started_at, (name, earlier.id, later.id)


async def assert_consistent(cluster: Cluster) -> int:
    database = Database(cluster.config["DB_URI"])
    storage = build_driver(load_settings(None, **cluster.config))
    try:
        report = await check_consistency(database, storage)
    finally:
        await storage.close()
        await database.dispose()
    assert report.problems == []
    return report.tags


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_push_through_node_a_pull_through_node_b(
    nodes: Cluster, clients: Clients, tmp_path: Path
) -> None:
    node_a, node_b = nodes.nodes
    source = tmp_path / "source"
    digest = write_image(source, "v1", layer_sizes=(3 * MiB, 40_000), rng=random.Random(1))
    creds = ":".join(ADMIN)
    clients.skopeo(
        "copy",
        NO_TLS,
        "--dest-creds",
        creds,
        f"oci:{source}:v1",
        f"docker://{node_a.host}/admin/pushed:v1",
    )
    pulled = tmp_path / "pulled"
    clients.skopeo(
        "copy",
        NO_TLS,
        "--src-creds",
        creds,
        f"docker://{node_b.host}/admin/pushed:v1",
        f"oci:{pulled}:v1",
    )
    raw = clients.skopeo(
        "inspect", NO_TLS, "--raw", "--creds", creds, f"docker://{node_b.host}/admin/pushed:v1"
    ).stdout
    assert sha256_digest(raw) == digest
    for blob in referenced_blobs(source, digest):
        assert blob_path(pulled, blob).read_bytes() == blob_path(source, blob).read_bytes()
    # Node B logged the pull as JSON access lines with request ids.
    access = [e for e in json_lines(node_b.log_path) if e.get("logger") == "moorage.access"]
    assert any(e["route"] == "/v2/{name:path}/blobs/{digest}" for e in access)
    assert all(len(e["request_id"]) == 32 for e in access)


async def test_chunked_upload_spread_across_both_nodes(nodes: Cluster) -> None:
    node_a, node_b = nodes.nodes
    data = random.Random(2).randbytes(8 * MiB + 123)
    first, second = data[: 6 * MiB], data[6 * MiB :]
    digest = sha256_digest(data)
    lb = {"Host": LB_HOST}
    async with (
        httpx.AsyncClient(base_url=node_a.url, headers=lb, trust_env=False, timeout=60) as a,
        httpx.AsyncClient(base_url=node_b.url, headers=lb, trust_env=False, timeout=60) as b,
    ):
        token = await a.get(
            "/v2/auth",
            params={"service": LB_HOST, "scope": "repository:admin/chunks:pull,push"},
            auth=ADMIN,
        )
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['token']}"}
        a.headers.update(bearer)
        b.headers.update(bearer)

        start = await a.post("/v2/admin/chunks/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = httpx.URL(start.headers["Location"]).raw_path.decode()
        octets = {"Content-Type": "application/octet-stream"}
        patch = await b.patch(
            location, content=first, headers={**octets, "Content-Range": f"0-{len(first) - 1}"}
        )
        assert patch.status_code == 202, patch.text
        assert patch.headers["Range"] == f"0-{len(first) - 1}"
        location = httpx.URL(patch.headers["Location"]).raw_path.decode()
        end = len(data) - 1
        patch = await a.patch(
            location, content=second, headers={**octets, "Content-Range": f"{len(first)}-{end}"}
        )
        assert patch.status_code == 202, patch.text
        location = httpx.URL(patch.headers["Location"]).raw_path.decode()
        done = await b.put(location, params={"digest": digest})
        assert done.status_code == 201, done.text
        assert done.headers["Docker-Content-Digest"] == digest

        for node in (a, b):
            got = await node.get(f"/v2/admin/chunks/blobs/{digest}")
            assert got.status_code == 200
            assert got.content == data


async def test_ten_mirrors_sync_concurrently_on_two_workers(
    nodes: Cluster, clients: Clients
) -> None:
    rng = random.Random(3)
    for repo in MIRRORS:
        write_image(nodes.layout, repo, layer_sizes=(200_000,), rng=rng, compresslevel=0)
        push_upstream(clients, nodes.upstream, nodes.layout, repo, f"library/{repo}", tag="latest")
    async with api_clients(nodes) as api:
        for index, repo in enumerate(MIRRORS):
            reference = f"{nodes.upstream.host}/library/{repo}"
            await create_mirror(api[index % 2], reference, repo, ["latest"])
        started = time.monotonic()
        for index, repo in enumerate(MIRRORS):
            await sync_now(api[(index + 1) % 2], repo)
        bodies = await asyncio.gather(
            *(wait_finished(api[0], repo, 0, timeout=60) for repo in MIRRORS)
        )
        took = time.monotonic() - started
        assert [b["sync_status"] for b in bodies] == ["SUCCESS"] * len(MIRRORS), bodies
        assert took < 60
        for repo in MIRRORS:
            assert await local_tags(api[1], repo) == ["latest"]

    by_repo = {repo: runs for repo, runs in (await mirror_runs(nodes)).items() if repo in MIRRORS}
    assert sorted(by_repo) == sorted(MIRRORS)
    assert all(len(runs) == 1 and runs[0].status == "succeeded" for runs in by_repo.values())
    assert_never_overlapping(by_repo)
    owners = {run.worker for runs in by_repo.values() for run in runs}
    assert {nodes.worker_pid(str(o)) for o in owners} == {
        w.pid for w in nodes.workers if w.poll() is None
    }
    # Worker logs are JSON lines; each sync's lines name its mirror.
    finished = {
        e["mirror"]
        for log in nodes.worker_logs
        for e in json_lines(log)
        if "mirror" in e and "SUCCESS" in e["message"]
    }
    assert {f"admin/{repo}" for repo in MIRRORS} <= finished
    assert await assert_consistent(nodes) >= len(MIRRORS)


async def test_worker_killed_mid_sync_the_other_takes_over(
    nodes: Cluster, clients: Clients
) -> None:
    write_image(nodes.layout, "big", layer_sizes=(16 * MiB,), rng=random.Random(4), compresslevel=0)
    push_upstream(clients, nodes.upstream, nodes.layout, "big", "library/slow", tag="big")
    nodes.proxy.rate = 1 * MiB  # ~16 s for the layer: plenty of time to kill its worker
    async with api_clients(nodes) as api:
        await create_mirror(api[0], f"{nodes.proxy.host}/library/slow", "slow", ["big"])
        await sync_now(api[1], "slow")

        async def copying() -> bool:
            status = (await get_mirror(api[0], "slow"))["sync_status"]
            return status == "SYNCING" and nodes.proxy.bytes_down > 2 * MiB

        await wait_for(copying, 30, "a worker to copy the large layer")
        (running,) = (await mirror_runs(nodes))["slow"]
        victim = nodes.worker_pid(str(running.worker))
        (process,) = [w for w in nodes.workers if w.pid == victim and w.poll() is None]
        kill_hard(process)
        killed_at = time.monotonic()
        nodes.proxy.rate = None
        survivor = next(w.pid for w in nodes.workers if w.poll() is None)

        body = await wait_finished(api[1], "slow", running.id, timeout=60)
        took = time.monotonic() - killed_at
        assert body["sync_status"] == "SUCCESS", body
        assert took < 45  # lease (10 s) + a poll + the copy
        newest, abandoned = await list_runs(api[0], "slow")
        assert (abandoned["status"], abandoned["error_kind"]) == ("failed", "worker_lost")
        assert (newest["status"], newest["trigger"]) == ("succeeded", "takeover")
        assert await local_tags(api[1], "slow") == ["big"]

    runs = (await mirror_runs(nodes))["slow"]
    assert [nodes.worker_pid(str(r.worker)) for r in runs] == [victim, survivor]
    assert_never_overlapping(await mirror_runs(nodes))
    assert await assert_consistent(nodes) >= 1
    nodes.start_worker()  # leave two live workers behind for any later test
