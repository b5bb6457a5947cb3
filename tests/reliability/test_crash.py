"""Crash safety (issue #6 item 2): SIGKILL at random moments, restart, fsck, carry on.

Four crash points, each repeated ``MOORAGE_CRASH_TRIALS`` times (default 1, to fit CI's time
budget; docs/reliability.md has the soak's figures) with randomised
timing, against real processes sharing one database and one storage:

- **push**: a client pushes an image (monolithic blob uploads of 1-8 MiB random layers streamed
  at 24 MiB/s, then the manifest) to ``moorage serve``, which is SIGKILLed after a random delay;
- **chunked**: the same with every blob sent as 512 KiB PATCH chunks; after the restart the
  client resumes its upload session where the server says it stands (GET → Range);
- **mirror**: ``moorage serve`` (worker inside) syncs a mirror of a docker-registry upstream,
  fed through a rate-limited proxy, and is SIGKILLed mid-sync; a fresh image is pushed upstream
  before every trial so that each sync downloads new blobs;
- **gc**: ``moorage gc`` runs as its own process over thousands of garbage blobs and a few
  unreferenced manifests while a client pushes images made of some of those very blobs, and is
  SIGKILLed once it has started deleting (every other trial together with ``moorage serve``).

After every kill: ``moorage serve`` is restarted on the same data, fsck (services/fsck.py, blob
content hashed) must find no corruption at all — no tag whose manifest, child or blob is missing
or wrong — and no blob row whose bytes are gone; then the interrupted work is done again and
must succeed (the push is redone, the upload resumed, the mirror converges on upstream's digests,
gc completes). At the end of each test, gc collects everything the crashes left behind (orphan
bytes, staging objects, unfinished writes, upload sessions), after which fsck finds nothing at
all, and `moorage fsck --json` (the CLI) exits 0.

Delays are drawn uniformly over 0-115 % of a calibration run of the same operation, so most kills
land mid-operation and a few after it finished; each trial records where it landed. A summary
per test is printed, and appended as one JSON line to ``$MOORAGE_CRASH_RESULTS`` when set.

Soak: ``MOORAGE_CRASH_TRIALS=50 MOORAGE_CRASH_RESULTS=crash.jsonl pytest tests/reliability/
test_crash.py`` (``MOORAGE_CRASH_SEED`` replays a run's timing; ``MOORAGE_CRASH_ALL_BACKENDS=1``
runs every point on PostgreSQL + S3 too, not only push and gc).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from moorage.config import Settings, load_settings
from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.models import Blob, Manifest, MirrorRun, Repository, RepositoryBlob
from moorage.oci.digest import Digest
from moorage.services.accounts import AccountService
from moorage.services.fsck import (
    BLOB_ROW_WITHOUT_BYTES,
    ORPHAN_BYTES,
    UNREFERENCED_BLOB_CORRUPT,
    FsckOptions,
    FsckReport,
    FsckService,
    Severity,
)
from moorage.services.gc import GarbageCollector
from moorage.services.registry import RegistryServices
from moorage.storage import paths
from moorage.storage.base import StorageDriver
from moorage.storage.factory import build_driver
from moorage.storage.s3_parts import MIN_PART
from tests.integration.mirror_helpers import (
    FINISHED,
    bootstrap_accounts,
    create_mirror,
    get_mirror,
    local_manifest,
    mirror_config,
    sync_now,
    wait_for,
)
from tests.support.faultproxy import run_fault_proxy
from tests.support.images import Image, make_image, sha256
from tests.support.server import DOCKER_REGISTRY, ServerHandle, run_docker_registry, run_moorage

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

MiB = 1024 * 1024
TRIALS = int(os.environ.get("MOORAGE_CRASH_TRIALS", "1"))
SEED = int(os.environ.get("MOORAGE_CRASH_SEED", str(random.randrange(1 << 32))))
RESULTS = os.environ.get("MOORAGE_CRASH_RESULTS")
ALL_BACKENDS = os.environ.get("MOORAGE_CRASH_ALL_BACKENDS") == "1"
CHUNK = 512 * 1024
PUSH_RATE = 24 * MiB  # a client's upload speed: pushes stream for a while, as over a network
PIECE = 64 * 1024
OVERSHOOT = 1.15  # delays cover 0..115 % of the calibrated duration
MIRROR_RATE = 2 * MiB  # bytes per second and connection through the upstream proxy
MIRROR_LEASE = 10  # the smallest lease Moorage accepts: the takeover after a kill waits for it


def backends(point: str) -> list[str]:
    """push and gc run on both backends; chunked and mirror on SQLite + filesystem (all with
    MOORAGE_CRASH_ALL_BACKENDS=1)."""
    if ALL_BACKENDS or point in {"push", "gc"}:
        return ["sqlite-fs", "postgres-s3"]
    return ["sqlite-fs"]


# --- bookkeeping -------------------------------------------------------------------------------


@dataclass
class Trial:
    number: int
    delay: float
    landed: str  # "mid-operation", "after completion", "before start"
    phase: str  # what was going on when the kill landed
    garbage: dict[str, int] = field(default_factory=dict)  # what fsck found left behind
    recovery: str = ""


@dataclass
class CrashStats:
    point: str
    backend: str
    seed: int
    calibration_seconds: float = 0.0
    trials: list[Trial] = field(default_factory=list)
    corruption_findings: int = 0
    corrupt_tags: int = 0
    rows_without_bytes: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        landed = Counter(t.landed for t in self.trials)
        phases = Counter(t.phase for t in self.trials)
        garbage: Counter[str] = Counter()
        for trial in self.trials:
            garbage.update(trial.garbage)
        return {
            "point": self.point,
            "backend": self.backend,
            "seed": self.seed,
            "trials": len(self.trials),
            "landed": dict(landed),
            "phases": dict(phases),
            "recovery": dict(Counter(t.recovery for t in self.trials)),
            "garbage_left_by_kills": dict(garbage),
            "corruption_findings": self.corruption_findings,
            "corrupt_tags": self.corrupt_tags,
            "rows_without_bytes": self.rows_without_bytes,
            "calibration_seconds": round(self.calibration_seconds, 2),
            "seconds": round(self.seconds, 1),
            "delays": [round(t.delay, 3) for t in self.trials],
        }

    def record(self) -> None:
        line = json.dumps(self.summary(), sort_keys=True)
        print(f"crash summary: {line}")
        if RESULTS:
            with Path(RESULTS).open("a") as out:
                out.write(line + "\n")


def rng_for(point: str, backend: str) -> random.Random:
    return random.Random(f"{SEED}-{point}-{backend}")


# --- processes ---------------------------------------------------------------------------------


class Serve:
    """``moorage serve`` on one config (so one database and storage), killed and restarted."""

    def __init__(self, config: dict[str, Any], tmp_path: Path) -> None:
        self.config = config
        self.tmp_path = tmp_path
        self.stack = contextlib.ExitStack()
        self.handle: ServerHandle | None = None
        self.starts = 0

    def start(self) -> ServerHandle:
        self.starts += 1
        self.handle = self.stack.enter_context(
            run_moorage(self.config, self.tmp_path / f"serve-{self.starts}")
        )
        return self.handle

    def kill(self) -> None:
        """SIGKILL the server we started (by PID), then reap it."""
        assert self.handle is not None
        os.kill(self.handle.pid, signal.SIGKILL)
        log = self.handle.log(3000)
        self.stack.close()
        print(f"--- killed moorage serve (start {self.starts}), log tail ---\n{log}")
        self.stack = contextlib.ExitStack()
        self.handle = None

    def restart(self) -> ServerHandle:
        return self.start()

    def close(self) -> None:
        if self.handle is not None:
            print(f"--- moorage serve (start {self.starts}) log tail ---\n{self.handle.log(3000)}")
        self.stack.close()


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def moorage_cli(config_path: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "moorage", *args, "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            start_new_session=True,
        )


def reap(process: subprocess.Popen[bytes], timeout: float = 120) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        raise


# --- checks ------------------------------------------------------------------------------------


@dataclass
class Backend:
    settings: Settings
    db: Database
    storage: StorageDriver


@contextlib.asynccontextmanager
async def backend_of(config: dict[str, Any], database: Database) -> AsyncIterator[Backend]:
    settings = load_settings(None, **config)
    storage = build_driver(settings)
    try:
        yield Backend(settings, database, storage)
    finally:
        await storage.close()


async def check_after_crash(be: Backend, stats: CrashStats, trial: Trial) -> FsckReport:
    """fsck right after a restart: no corruption, no row without bytes; garbage is counted."""
    report = await FsckService(be.db, be.storage).run(FsckOptions(staging_age=dt.timedelta(0)))
    corruption = report.of(Severity.CORRUPTION)
    stats.corruption_findings += len(corruption)
    stats.corrupt_tags += len(report.corrupt_tags)
    trial.garbage = report.kinds(Severity.GARBAGE)
    stats.rows_without_bytes += trial.garbage.get(BLOB_ROW_WITHOUT_BYTES, 0)
    assert corruption == [], f"trial {trial.number} ({trial.phase}): {corruption}"
    assert report.corrupt_tags == []
    assert BLOB_ROW_WITHOUT_BYTES not in trial.garbage, report.findings
    return report


async def collect(be: Backend) -> FsckReport:
    """gc (no grace, no staging age: the registry is idle) collects everything the last kill
    left behind; then fsck finds nothing to report."""
    services = RegistryServices.build(be.settings, be.db, be.storage)
    await GarbageCollector(be.db, be.storage, services.uploads, 0).run(upload_max_age=0)
    report = await FsckService(be.db, be.storage).run(FsckOptions(staging_age=dt.timedelta(0)))
    assert [f for f in report.findings if f.severity is not Severity.NOTICE] == []
    return report


async def collect_and_check_clean(be: Backend, config_path: Path, tmp_path: Path) -> None:
    """gc collects everything the crashes left; then fsck (service and CLI) finds nothing."""
    report = await collect(be)
    log = tmp_path / "fsck-cli.log"
    cli = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "moorage",
            "fsck",
            "--config",
            str(config_path),
            "--json",
            "--staging-age",
            "0",
        ],
        capture_output=True,
        env=clean_env(),
        timeout=300,
        check=False,
    )
    log.write_bytes(cli.stdout + cli.stderr)
    assert cli.returncode == 0, cli.stdout.decode()[-3000:] + cli.stderr.decode()[-3000:]
    body = json.loads(cli.stdout)
    assert body["ok"] is True
    assert body["counts"]["tags"] == report.tags


# --- pushing -----------------------------------------------------------------------------------


def random_image(rng: random.Random, layers: int, low: int, high: int) -> Image:
    return make_image(layer_sizes=tuple(rng.randint(low, high) for _ in range(layers)))


async def paced(data: bytes, rate: float = PUSH_RATE) -> AsyncIterator[bytes]:
    """``data`` in small pieces at about ``rate`` bytes per second."""
    started = time.monotonic()
    for offset in range(0, len(data), PIECE):
        yield data[offset : offset + PIECE]
        ahead = (offset + PIECE) / rate - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)


def size_of(image: Image) -> int:
    return sum(len(blob) for blob in image.blobs)


def upload_range(response: httpx.Response) -> int:
    """Bytes received so far, from an upload status Range header ("0-<last>")."""
    end = int(response.headers["Range"].split("-")[1])
    return 0 if end == 0 else end + 1


@dataclass
class Pusher:
    """Pushes one image; remembers where it is, so a kill can be located and the push resumed."""

    repo: str
    image: Image
    tag: str
    chunked: bool = False
    phase: str = "not started"
    location: dict[int, str] = field(default_factory=dict)  # blob index -> upload session
    finished_at: float | None = None
    resumed: int = 0  # uploads continued from the offset the server reported after a restart
    restarted: int = 0  # uploads begun again because the old session could not continue

    async def run(self, client: httpx.AsyncClient, *, resume: bool = False) -> None:
        for index, blob in enumerate(self.image.blobs):
            self.phase = f"blob {index + 1}/{len(self.image.blobs)}"
            if resume and (await client.head(f"/v2/{self.repo}/blobs/{sha256(blob)}")).is_success:
                continue
            if self.chunked:
                await self.push_chunked(client, index, blob, resume=resume)
            else:
                await self.push_monolithic(client, blob)
        self.phase = "manifest"
        response = await client.put(
            f"/v2/{self.repo}/manifests/{self.tag}",
            content=self.image.manifest,
            headers={"Content-Type": self.image.media_type},
        )
        assert response.status_code == 201, response.text
        self.phase = "done"
        self.finished_at = time.monotonic()

    async def push_monolithic(self, client: httpx.AsyncClient, blob: bytes) -> None:
        response = await client.post(
            f"/v2/{self.repo}/blobs/uploads/",
            params={"digest": sha256(blob)},
            content=paced(blob),
            headers={"Content-Length": str(len(blob))},
        )
        assert response.status_code == 201, response.text

    async def push_chunked(
        self, client: httpx.AsyncClient, index: int, blob: bytes, *, resume: bool
    ) -> None:
        offset = 0
        location = self.location.get(index) if resume else None
        if location is not None:
            status = await client.get(location)
            if status.status_code == 204:
                offset, location = upload_range(status), status.headers["Location"]
                self.resumed += 1
            else:
                location = None
                self.restarted += 1
        if location is None:
            started = await client.post(f"/v2/{self.repo}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = started.headers["Location"]
            self.location[index] = location
        while offset < len(blob):
            piece = blob[offset : offset + CHUNK]
            response = await client.patch(
                location,
                content=paced(piece),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                    "Content-Length": str(len(piece)),
                },
            )
            assert response.status_code == 202, response.text
            offset += len(piece)
            location = response.headers["Location"]
            self.location[index] = location
        done = await client.put(location, params={"digest": sha256(blob)})
        if done.status_code != 201 and resume:
            # The session cannot be completed (e.g. its chunks were consumed by a commit that
            # died): begin this blob again, as a client does.
            self.restarted += 1
            self.location.pop(index, None)
            await self.push_chunked(client, index, blob, resume=False)
            return
        assert done.status_code == 201, done.text


def client_for(handle: ServerHandle, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=handle.url, headers=headers or {}, trust_env=False, timeout=60
    )


async def kill_during(
    serve: Serve, work: Awaitable[None], delay: float
) -> tuple[bool, BaseException | None]:
    """Run ``work``, SIGKILL the server after ``delay`` s; (work had finished, its error)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=delay)
    if done and task.exception() is not None:
        serve.kill()
        raise AssertionError("the work failed before the kill") from task.exception()
    finished = bool(done)
    serve.kill()
    error: BaseException | None = None
    try:
        await asyncio.wait_for(task, 60)
    except (httpx.HTTPError, AssertionError) as exc:
        error = exc
    return finished, error


async def push_crash_trials(
    point: str,
    chunked: bool,
    base_config: dict[str, Any],
    database: Database,
    backend: str,
    tmp_path: Path,
) -> None:
    stats = CrashStats(point, backend, SEED)
    rng = rng_for(point, backend)
    started = time.monotonic()
    config = crash_config(base_config)
    serve = Serve(config, tmp_path)
    repo = f"crash/{point}"
    try:
        async with backend_of(config, database) as be:
            handle = serve.start()
            # Calibration: a warm-up push, then one timed, both without a kill.
            warm_up = Pusher(repo, random_image(rng, 3, 1 * MiB, 8 * MiB), "warm-up", chunked)
            image = random_image(rng, 3, 1 * MiB, 8 * MiB)
            calibration = Pusher(repo, image, "calibration", chunked)
            async with client_for(handle) as client:
                await warm_up.run(client)
                before = time.monotonic()
                await calibration.run(client)
                stats.calibration_seconds = time.monotonic() - before
            for number in range(TRIALS):
                image = random_image(rng, 3, 1 * MiB, 8 * MiB)
                pusher = Pusher(repo, image, f"t{number}", chunked)
                # Scaled to this image's size: pushes take time in proportion to their bytes.
                expected = stats.calibration_seconds * size_of(image) / size_of(calibration.image)
                delay = rng.uniform(0, OVERSHOOT * expected)
                assert serve.handle is not None
                async with client_for(serve.handle) as client:
                    finished, _error = await kill_during(serve, pusher.run(client), delay)
                trial = Trial(
                    number,
                    delay,
                    "after completion" if finished else "mid-operation",
                    pusher.phase if not finished else "done",
                )
                stats.trials.append(trial)
                handle = serve.restart()
                await check_after_crash(be, stats, trial)
                # The interrupted push is done again (resumed, for chunked uploads).
                async with client_for(handle) as client:
                    await pusher.run(client, resume=True)
                    got = await client.get(
                        f"/v2/{repo}/manifests/{pusher.tag}",
                        headers={"Accept": image.media_type},
                    )
                    assert got.status_code == 200
                    assert got.headers["Docker-Content-Digest"] == image.digest
                    for blob in image.blobs:
                        pulled = await client.get(f"/v2/{repo}/blobs/{sha256(blob)}")
                        assert pulled.content == blob
                trial.recovery = (
                    f"resumed {pusher.resumed}, restarted {pusher.restarted}"
                    if chunked
                    else "pushed again"
                )
                report = await check_after_crash(be, stats, Trial(number, 0, "", "recovered"))
                assert report.tags == number + 3  # warm-up, calibration, t0..tN
                await collect(be)
            assert serve.handle is not None
            await collect_and_check_clean(be, serve.handle.config_path, tmp_path)
    finally:
        serve.close()
        stats.seconds = time.monotonic() - started
        stats.record()


def crash_config(base_config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """``base_config`` with small S3 parts (so layers stream as multipart uploads)."""
    config = {**base_config, **overrides}
    storage = config.get("DISTRIBUTED_STORAGE_CONFIG")
    if storage:
        kind, params = storage["s3"]
        config["DISTRIBUTED_STORAGE_CONFIG"] = {"s3": [kind, {**params, "part_size": MIN_PART}]}
    return config


@pytest.mark.parametrize("backend", backends("push"))
async def test_crash_during_push(
    base_config: dict[str, Any], database: Database, backend: str, tmp_path: Path
) -> None:
    await push_crash_trials("push", False, base_config, database, backend, tmp_path)


@pytest.mark.parametrize("backend", backends("chunked"))
async def test_crash_during_chunked_upload(
    base_config: dict[str, Any], database: Database, backend: str, tmp_path: Path
) -> None:
    await push_crash_trials("chunked", True, base_config, database, backend, tmp_path)


# --- mirror ------------------------------------------------------------------------------------


@pytest.fixture
def registry_binary() -> str:
    """docker-registry, the mirror's upstream: skip without it (fail under CI=true)."""
    if not Path(DOCKER_REGISTRY).exists():
        message = f"{DOCKER_REGISTRY} is not installed (Debian package docker-registry)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (required under CI=true)")
        pytest.skip(message)
    return DOCKER_REGISTRY


def push_to_registry(base_url: str, repo: str, image: Image, tag: str) -> None:
    """Push ``image`` to a plain (unauthenticated) registry such as docker-registry."""
    with httpx.Client(base_url=base_url, trust_env=False, timeout=60) as client:
        for blob in image.blobs:
            if client.head(f"/v2/{repo}/blobs/{sha256(blob)}").status_code == 200:
                continue
            started = client.post(f"/v2/{repo}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = started.headers["Location"]  # carries docker-registry's _state
            separator = "&" if "?" in location else "?"
            done = client.put(f"{location}{separator}digest={sha256(blob)}", content=blob)
            assert done.status_code == 201, done.text
        response = client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=image.manifest,
            headers={"Content-Type": image.media_type},
        )
        assert response.status_code == 201, response.text


async def last_run(db: Database) -> MirrorRun | None:
    async with db.transaction(readonly=True) as session:
        stmt = select(MirrorRun).order_by(MirrorRun.id.desc()).limit(1)
        return (await session.execute(stmt)).scalar_one_or_none()


async def converged(client: httpx.AsyncClient, upstream: dict[str, str]) -> bool:
    """Every upstream tag is local with the same digest."""
    for tag, digest in upstream.items():
        response = await local_manifest(client, "app", tag)
        if response.status_code != 200 or response.headers["Docker-Content-Digest"] != digest:
            return False
    return True


@pytest.mark.parametrize("backend", backends("mirror"))
async def test_crash_during_mirror_sync(
    base_config: dict[str, Any],
    database: Database,
    backend: str,
    tmp_path: Path,
    registry_binary: str,
) -> None:
    stats = CrashStats("mirror", backend, SEED)
    rng = rng_for("mirror", backend)
    started = time.monotonic()
    config = crash_config(
        mirror_config(
            base_config,
            REPO_MIRROR_LEASE_SECONDS=MIRROR_LEASE,
            REPO_MIRROR_INTERVAL=1,
            REPO_MIRROR_TAG_CONCURRENCY=2,
        )
    )
    load_settings(None, **config)  # writes the DATA_DIR secrets before any process starts
    headers = await bootstrap_accounts(AccountService(database, []))
    serve = Serve(config, tmp_path)
    upstream_tags: dict[str, str] = {}
    lifetime = 600 + 60 * TRIALS
    try:
        with (
            run_docker_registry(tmp_path) as upstream,
            run_fault_proxy(upstream.port, rate=MIRROR_RATE, lifetime=lifetime) as proxy,
        ):
            async with backend_of(config, database) as be:
                handle = serve.start()
                async with client_for(handle, headers) as client:
                    await create_mirror(client, f"{proxy.host}/library/app", "app", ["*"])
                    # Calibration: one full sync of a first image.
                    first = random_image(rng, 3, 1 * MiB, 6 * MiB)
                    await asyncio.to_thread(
                        push_to_registry, upstream.url, "library/app", first, "calibration"
                    )
                    upstream_tags["calibration"] = first.digest
                    before = time.monotonic()
                    await sync_now(client, "app")
                    await wait_for(
                        lambda: converged(client, upstream_tags), 120, "the calibration sync"
                    )
                    stats.calibration_seconds = time.monotonic() - before
                for number in range(TRIALS):
                    image = random_image(rng, 3, 1 * MiB, 6 * MiB)
                    tag = f"t{number}"
                    await asyncio.to_thread(
                        push_to_registry, upstream.url, "library/app", image, tag
                    )
                    upstream_tags[tag] = image.digest
                    expected = stats.calibration_seconds * size_of(image) / size_of(first)
                    delay = rng.uniform(0, OVERSHOOT * expected)
                    assert serve.handle is not None
                    down_before = proxy.bytes_down
                    async with client_for(serve.handle, headers) as client:
                        await wait_for(lambda: mirror_idle(client), 120, "an idle mirror")
                        previous = await last_run(be.db)
                        await sync_now(client, "app")
                        await asyncio.sleep(delay)
                        serve.kill()
                    run = await last_run(be.db)
                    downloaded = proxy.bytes_down - down_before
                    if run is None or (previous is not None and run.id == previous.id):
                        landed, phase = "before start", "sync not claimed yet"
                    elif run.status == "running":
                        landed = "mid-operation"
                        phase = "downloading" if downloaded else "sync started, no blob bytes yet"
                    else:
                        landed, phase = "after completion", f"run {run.status}"
                    trial = Trial(number, delay, landed, phase)
                    stats.trials.append(trial)
                    handle = serve.restart()
                    await check_after_crash(be, stats, trial)
                    # The mirror converges: a takeover after the lease, or the pending sync-now.
                    async with client_for(handle, headers) as client:
                        if not await converged(client, upstream_tags):
                            if await mirror_idle(client):  # nothing pending: ask again
                                await sync_now(client, "app")
                            await wait_for(
                                lambda: converged(client, upstream_tags),
                                MIRROR_LEASE + 120,
                                f"the mirror to converge after trial {number}",
                            )
                        body = await get_mirror(client, "app")
                        await wait_for(lambda: mirror_idle(client), 120, "an idle mirror")
                    trial.recovery = "converged"
                    print(f"trial {number}: {landed} ({phase}); mirror {body['sync_status']}")
                    await check_after_crash(be, stats, Trial(number, 0, "", "recovered"))
                    await collect(be)
                assert serve.handle is not None
                async with client_for(serve.handle, headers) as client:
                    await wait_for(lambda: mirror_idle(client), 120, "an idle mirror")
                await collect_and_check_clean(be, serve.handle.config_path, tmp_path)
    finally:
        serve.close()
        stats.seconds = time.monotonic() - started
        stats.record()


async def mirror_idle(client: httpx.AsyncClient) -> bool:
    """No sync running or pending (a takeover may still be finishing)."""
    return (await get_mirror(client, "app"))["sync_status"] in FINISHED | {"NEVER_RUN"}


# --- gc ----------------------------------------------------------------------------------------


@dataclass
class Garbage:
    blobs: list[bytes]
    repo_id: int


async def make_garbage(
    be: Backend, client: httpx.AsyncClient, rng: random.Random, count: int, number: int
) -> Garbage:
    """``count`` unreferenced blobs (rows, links, bytes) and a few unreferenced manifests."""
    for index in range(4):
        image = random_image(rng, 2, 10_000, 50_000)
        for blob in image.blobs:
            response = await client.post(
                "/v2/crash/gc/blobs/uploads/", params={"digest": sha256(blob)}, content=blob
            )
            assert response.status_code == 201, response.text
        tag = f"doomed-{number}-{index}"
        put = await client.put(
            f"/v2/crash/gc/manifests/{tag}",
            content=image.manifest,
            headers={"Content-Type": image.media_type},
        )
        assert put.status_code == 201, put.text
        assert (await client.delete(f"/v2/crash/gc/manifests/{tag}")).status_code == 202
    blobs = [rng.randbytes(rng.randint(100, 3000)) for _ in range(count)]
    async with be.db.transaction(readonly=True) as session:
        repo_id = (
            await session.execute(
                select(Repository.id).where(
                    Repository.namespace == "crash", Repository.name == "gc"
                )
            )
        ).scalar_one()
    slots = asyncio.Semaphore(16)

    async def store(data: bytes) -> None:
        async with slots:
            await be.storage.write(paths.blob_key(Digest.parse(sha256(data))), once(data))

    await asyncio.gather(*(store(b) for b in blobs))
    old = utcnow() - dt.timedelta(minutes=5)
    async with be.db.transaction() as session:
        for low in range(0, len(blobs), 500):
            batch = blobs[low : low + 500]
            await session.execute(
                insert(Blob),
                [{"digest": sha256(b), "size": len(b), "created_at": old} for b in batch],
            )
        ids = (
            await session.execute(
                select(Blob.id).where(Blob.digest.in_([sha256(b) for b in blobs]))
            )
        ).scalars()
        rows = [{"repository_id": repo_id, "blob_id": i, "linked_at": old} for i in ids]
        for low in range(0, len(rows), 500):
            await session.execute(insert(RepositoryBlob), rows[low : low + 500])
    return Garbage(blobs, repo_id)


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def garbage_left(db: Database) -> int:
    async with db.transaction(readonly=True) as session:
        blobs = (await session.execute(select(func.count(Blob.id)))).scalar_one()
        manifests = (await session.execute(select(func.count(Manifest.id)))).scalar_one()
    return int(blobs) + int(manifests)


def images_from(garbage: Garbage, rng: random.Random, number: int) -> list[Pusher]:
    """Images whose layers are blobs gc is collecting: pushed while it runs."""
    pushers = []
    for index in range(6):
        image = rebuild(make_image(layer_sizes=(1,)), rng.sample(garbage.blobs, 2))
        pushers.append(Pusher("crash/gc", image, f"keep-{number}-{index}"))
    return pushers


async def push_all(handle: ServerHandle, pushers: list[Pusher], *, resume: bool = False) -> None:
    async with client_for(handle) as client:
        for pusher in pushers:
            if pusher.phase != "done":
                await pusher.run(client, resume=resume)


def rebuild(image: Image, layers: list[bytes]) -> Image:
    """``image`` with ``layers`` instead of its own (manifest rewritten)."""
    manifest = json.loads(image.manifest)
    manifest["layers"] = [
        {"mediaType": manifest["layers"][0]["mediaType"], "digest": sha256(x), "size": len(x)}
        for x in layers
    ]
    return Image(image.config, layers, json.dumps(manifest).encode())


@pytest.mark.parametrize("backend", backends("gc"))
async def test_crash_during_gc(
    base_config: dict[str, Any], database: Database, backend: str, tmp_path: Path
) -> None:
    """Images made of the blobs gc is deleting are pushed while it runs. Even trials (0, 2, ...)
    kill gc and serve at once, as a machine crash would (the pushes are then redone); odd
    trials kill gc alone, and every push must succeed."""
    stats = CrashStats("gc", backend, SEED)
    rng = rng_for("gc", backend)
    started = time.monotonic()
    config = crash_config(base_config)
    count = 2000 if backend == "sqlite-fs" else 600
    serve = Serve(config, tmp_path)
    keep = 0
    try:
        async with backend_of(config, database) as be:
            handle = serve.start()
            async with client_for(handle) as client:
                await make_garbage(be, client, rng, count, -1)
            # Calibration: a full gc run, timed from its first deletion to its exit.
            before = await garbage_left(be.db)
            log = tmp_path / "gc-calibration.log"
            gc = moorage_cli(handle.config_path, "gc", "--grace-seconds", "0", log=log)
            working_at = await wait_progress(be.db, before, gc)
            assert reap(gc) == 0, log.read_text()
            stats.calibration_seconds = time.monotonic() - (working_at or time.monotonic())
            for number in range(TRIALS):
                machine_crash = number % 2 == 0
                async with client_for(handle) as client:
                    garbage = await make_garbage(be, client, rng, count, number)
                pushers = images_from(garbage, rng, number)
                before = await garbage_left(be.db)
                log = tmp_path / f"gc-{number}.log"
                gc = moorage_cli(handle.config_path, "gc", "--grace-seconds", "0", log=log)
                working_at = await wait_progress(be.db, before, gc)
                pushing = asyncio.ensure_future(push_all(handle, pushers))
                delay = rng.uniform(0, OVERSHOOT * stats.calibration_seconds)
                landed, phase = "after completion", "gc exited before a deletion was seen"
                if working_at is not None:
                    await asyncio.sleep(delay)
                    if gc.poll() is None:
                        os.kill(gc.pid, signal.SIGKILL)
                        landed, phase = "mid-operation", "gc deleting"
                    else:
                        phase = "gc exited"
                if machine_crash:
                    serve.kill()
                    phase += ", serve killed too"
                gc.wait(30)
                if machine_crash:
                    with contextlib.suppress(httpx.HTTPError, AssertionError):
                        await asyncio.wait_for(pushing, 60)
                else:
                    await asyncio.wait_for(pushing, 120)  # every push succeeded
                    assert [p.phase for p in pushers] == ["done"] * len(pushers)
                after = await garbage_left(be.db)
                trial = Trial(number, delay, landed, phase)
                stats.trials.append(trial)
                print(f"trial {number}: {landed} ({phase}), {before} -> {after} rows")
                if machine_crash:
                    handle = serve.restart()
                await check_after_crash(be, stats, trial)
                # gc completes; the interrupted pushes are done again.
                rerun = moorage_cli(
                    handle.config_path, "gc", "--grace-seconds", "0", log=tmp_path / "gc-re.log"
                )
                assert reap(rerun) == 0, (tmp_path / "gc-re.log").read_text()
                await push_all(handle, pushers, resume=True)
                keep += len(pushers)
                trial.recovery = "gc completed, pushes done"
                report = await check_after_crash(be, stats, Trial(number, 0, "", "recovered"))
                assert report.tags == keep
                left = report.kinds(Severity.GARBAGE)
                for kind in (ORPHAN_BYTES, BLOB_ROW_WITHOUT_BYTES, UNREFERENCED_BLOB_CORRUPT):
                    assert kind not in left, report.findings
                await collect(be)
            await collect_and_check_clean(be, handle.config_path, tmp_path)
    finally:
        serve.close()
        stats.seconds = time.monotonic() - started
        stats.record()


async def wait_progress(
    db: Database, before: int, process: subprocess.Popen[bytes], timeout: float = 120
) -> float | None:
    """When gc was first seen deleting rows (None: it exited before we saw any)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await garbage_left(db) < before:
            return time.monotonic()
        if process.poll() is not None:
            return None
        await asyncio.sleep(0.02)
    raise AssertionError("gc made no progress")
