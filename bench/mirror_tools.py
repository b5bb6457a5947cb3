"""The mirroring methods under test, each syncing into a fresh, empty destination.

Moorage runs on its embedded defaults (SQLite and local storage in a fresh DATA_DIR) with
REPO_MIRROR_INTERVAL 1, in two deployments:

* ``moorage``: ``moorage serve`` with its in-process worker (the default), which a sync-now
  wakes at once; RSS and CPU are those of the whole server process (API + worker);
* ``moorage-worker``: ``moorage serve`` without worker (API only) plus a separate
  ``moorage worker`` process, which finds the sync-now at its next poll (0-1 s later);
  RSS and CPU are those of the worker process alone.

A sync is: POST .../mirror/sync-now, then wait until GET .../mirror shows the run finished
(the worker's log is tailed for the run's outcome line, then one GET confirms); the clock
stops when that GET answers SUCCESS. Moorage is warmed up first by syncing a one-image
mirror of its own (unmeasured): a long-running worker has long paid its lazy imports and
SQL compilation.

The skopeo methods sync into a fresh docker-registry:

* ``skopeo-sync``: ``skopeo sync --all`` of the upstream repository into a docker-registry.
* ``copy-loop``: Quay's method: ``skopeo list-tags``, then one ``skopeo copy --all`` per tag.

Every external program and every wait has a deadline; processes are stopped by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import text
from tests.integration.mirror_helpers import (
    ROBOT,
    WORKER_START_TIMEOUT,
    bootstrap_accounts,
    mirror_config,
)
from tests.support.server import ServerHandle, run_docker_registry, run_moorage, stop_process

from bench.mirror_dataset import MirrorDataset, SkopeoEnv
from bench.procmon import PeakRss, tree_cpu_seconds
from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.db.migrate import upgrade
from moorage.services.accounts import AccountService

SYNC_TIMEOUT = 1800.0
SKOPEO_TIMEOUT = 1800.0
LOG_POLL = 0.02  # the worker's log is tailed this often (a file read, no load on the server)
API_POLL = 0.25  # ... and the API asked at least this often, in case the line is missed
REPO_ROOT = Path(__file__).resolve().parent.parent
GNU_TIME = "/usr/bin/time"
PY_SPY = str(Path(sys.executable).parent / "py-spy")
FINISHED = {"SUCCESS", "FAIL", "CANCEL"}
NAMESPACE = "admin"  # Moorage side; the upstream repository is ``mirror/app``
_RUN_LINE = re.compile(r"mirror (\S+)/(\S+): (\w+) \((\S+)\) in ([0-9.]+)s")


@dataclass
class Measurement:
    seconds: float
    rss_mib: float  # peak RSS of the Moorage worker, or of the largest skopeo process
    cpu_seconds: float  # CPU of the Moorage worker, or of all skopeo processes
    detail: dict[str, float] = field(default_factory=dict)


class Destination(Protocol):
    def sync(self) -> Measurement: ...

    def pids(self) -> list[int]:
        """The destination's processes (for the CPU-noise accounting)."""
        ...


# --- Moorage ---------------------------------------------------------------------------------


async def _bootstrap(config: dict[str, Any]) -> dict[str, str]:
    settings = load_settings(None, **config)  # also writes the DATA_DIR secrets
    db = Database(settings.database_url)
    try:
        await upgrade(db)
        return await bootstrap_accounts(AccountService(db, []))
    finally:
        await db.dispose()


class MoorageMirror:
    def __init__(
        self,
        server: ServerHandle,
        worker_pid: int,
        worker_log: Path,
        headers: dict[str, str],
        py_spy: Path | None = None,
    ) -> None:
        self.server = server
        self.worker_pid = worker_pid  # the process running the worker (maybe the server)
        self.worker_log = worker_log
        self.client = httpx.Client(
            base_url=server.url, headers=headers, trust_env=False, timeout=60
        )
        self.py_spy = py_spy
        self.syncs = 0

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, expect: int, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, f"/api/v1/repository/{NAMESPACE}/{path}", **kwargs)
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response

    def create(self, repo: str, upstream: str) -> None:
        self.client.post(
            "/api/v1/repository",
            json={"repository": repo, "namespace": NAMESPACE, "visibility": "private"},
        ).raise_for_status()
        body = {
            "external_reference": upstream,
            "sync_interval": 86400,
            "sync_start_date": "2099-01-01T00:00:00Z",  # only sync-now starts a sync
            "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["*"]},
            "robot_username": ROBOT,
            "external_registry_config": {"verify_tls": False},
        }
        self._call("POST", f"{repo}/mirror", 201, json=body)

    def mirror(self, repo: str) -> dict[str, Any]:
        return dict(self._call("GET", f"{repo}/mirror", 200).json())

    def sync_repo(self, repo: str, *, measure: bool = True) -> Measurement:
        """sync-now, then wait for the finished run; peak RSS and CPU of the worker meanwhile."""
        last = self.mirror(repo)["last_sync"]
        before = last["id"] if last else 0
        offset = self.worker_log.stat().st_size
        spy = self._start_py_spy() if measure and self.py_spy else None
        with PeakRss(self.worker_pid, max_seconds=SYNC_TIMEOUT) as peak:
            started = time.perf_counter()
            self._call("POST", f"{repo}/mirror/sync-now", 204)
            body, run_line = self._wait(repo, before, offset, started + SYNC_TIMEOUT)
            seconds = time.perf_counter() - started
        # The worker logs the outcome just after committing it: a GET may see it first.
        for _ in range(50):
            if run_line is not None:
                break
            time.sleep(LOG_POLL)
            run_line = self._run_line(repo, offset)
        if spy is not None:
            _stop(spy)
        for line in self._log_since(offset).splitlines():
            if "txn-stats" in line:  # from bench.mirror_worker_experiment txn-stats
                print(f"    {repo}: {line.partition('txn-stats')[2].strip()}", file=sys.stderr)
        run = body["last_sync"]
        if body["sync_status"] != "SUCCESS" or run["tags_failed"]:
            raise RuntimeError(f"Moorage sync of {repo} did not succeed: {body}")
        detail = {
            "tags_copied": float(run["tags_copied"]),
            "tags_skipped": float(run["tags_skipped"]),
            "bytes": float(run["bytes"]),
        }
        if run_line is not None:
            detail["run_s"] = run_line  # the worker's own clock: claim -> outcome
            detail["claim_s"] = max(seconds - run_line, 0.0)  # poll wait + release + our GET
        return Measurement(seconds, peak.peak_mib, peak.cpu_seconds, detail)

    def _wait(
        self, repo: str, before: int, offset: int, deadline: float
    ) -> tuple[dict[str, Any], float | None]:
        """Tail the worker log for the run's outcome line (free), then confirm with a GET."""
        next_api = time.perf_counter() + API_POLL
        while time.perf_counter() < deadline:
            run_line = self._run_line(repo, offset)
            if run_line is not None or time.perf_counter() >= next_api:
                body = self.mirror(repo)
                last = body["last_sync"]
                if body["sync_status"] in FINISHED and last and last["id"] > before:
                    return body, run_line
                next_api = time.perf_counter() + API_POLL
            if not Path(f"/proc/{self.worker_pid}").exists():
                raise RuntimeError(f"the moorage worker exited:\n{self._log_tail()}")
            time.sleep(LOG_POLL)
        raise TimeoutError(f"Moorage sync of {repo} not finished in {SYNC_TIMEOUT} s")

    def _run_line(self, repo: str, offset: int) -> float | None:
        text = self._log_since(offset)
        for match in _RUN_LINE.finditer(text):
            if (match.group(1), match.group(2)) == (NAMESPACE, repo):
                return float(match.group(5))
        return None

    def _log_since(self, offset: int) -> str:
        with self.worker_log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _log_tail(self) -> str:
        return self.worker_log.read_text(errors="replace")[-4000:]

    def _start_py_spy(self) -> subprocess.Popen[bytes]:
        assert self.py_spy is not None
        self.syncs += 1
        out = self.py_spy.with_name(f"{self.py_spy.name}-{self.syncs}.txt")
        return subprocess.Popen(
            [PY_SPY, "record", "--pid", str(self.worker_pid), "--rate", "200",
             "--format", "raw", "--output", str(out),
             *os.environ.get("MIRROR_BENCH_PY_SPY_ARGS", "--nonblocking").split()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (py-spy then writes its output), SIGKILL after a bounded wait; by PID."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


class MoorageDestination:
    def __init__(self, mirror: MoorageMirror, repo: str) -> None:
        self.mirror = mirror
        self.repo = repo

    def sync(self) -> Measurement:
        return self.mirror.sync_repo(self.repo)

    def pids(self) -> list[int]:
        return sorted({self.mirror.server.pid, self.mirror.worker_pid})


@contextlib.contextmanager
def worker_process(
    config_path: Path, log_path: Path, experiment: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``moorage worker`` (or ``bench.mirror_worker_experiment``); waits until it polls.

    As tests/integration/mirror_helpers.run_worker_process, with a choice of program.
    """
    command = ["-m", "moorage", "worker"]
    if experiment:
        command = ["-m", "bench.mirror_worker_experiment", experiment]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, *command, "--config", str(config_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=log_path.parent, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while "mirror worker" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        yield process
    finally:
        stop_process(process)


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    admin_uri = os.environ.get(
        "MOORAGE_TEST_PG_URI", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"moorage_mirror_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        db = Database(admin_uri)
        try:
            async with db.write_engine.connect() as raw:
                conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(sql))
        finally:
            await db.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin_uri.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def moorage_destination(
    workdir: Path,
    upstream: str,
    repo: str,
    *,
    separate_worker: bool,
    experiment: str | None = None,
    postgres: bool = False,
    py_spy: Path | None = None,
) -> Iterator[MoorageDestination]:
    """Fresh Moorage, warmed up, with an idle mirror of ``upstream/repo``.

    ``postgres``: the database is a fresh one on the PostgreSQL server of the tests
    (127.0.0.1:5432 or $MOORAGE_TEST_PG_URI), dropped afterwards, instead of SQLite.
    """
    base: dict[str, Any] = {"DATA_DIR": str(workdir / "data")}
    with contextlib.ExitStack() as stack:
        if postgres:
            base["DB_URI"] = stack.enter_context(_postgres_database())
        # $MIRROR_BENCH_CONFIG: extra config keys as JSON, for tuning runs.
        extra = json.loads(os.environ.get("MIRROR_BENCH_CONFIG") or "{}")
        config = mirror_config(
            base, REPO_MIRROR_WORKER=not separate_worker, REPO_MIRROR_INTERVAL=1, **extra
        )
        headers = asyncio.run(_bootstrap(config))
        server = stack.enter_context(run_moorage(config, workdir))
        if separate_worker:
            log = workdir / "worker.log"
            pid = stack.enter_context(worker_process(server.config_path, log, experiment)).pid
        else:
            log, pid = server.log_path, server.pid
        mirror = MoorageMirror(server, pid, log, headers, py_spy)
        stack.callback(mirror.close)
        mirror.create("warmup", f"{upstream}/{repo}-warmup")
        mirror.sync_repo("warmup", measure=False)
        mirror.create("app", f"{upstream}/{repo}")
        yield MoorageDestination(mirror, "app")


# --- skopeo ----------------------------------------------------------------------------------


@dataclass
class ProcessUsage:
    seconds: float
    maxrss_kib: int
    cpu_seconds: float
    stdout: str


def run_with_usage(argv: list[str], env: dict[str, str], timeout: float) -> ProcessUsage:
    """Run a program; wall time, its peak RSS and CPU time (SIGKILLed by PID after timeout).

    Measured by GNU time (wait4's rusage): this process's own ru_maxrss cannot be used, as a
    child forked from a big Python process inherits the parent's high-water mark over exec.
    """
    with tempfile.TemporaryDirectory() as scratch:
        usage_file = Path(scratch) / "usage"
        log_file = Path(scratch) / "log"
        with log_file.open("wb") as out:
            started = time.perf_counter()
            process = subprocess.Popen(
                [GNU_TIME, "--output", str(usage_file), "--format", "%M %U %S", *argv],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # our own new session: time + skopeo
                process.wait(10)
            seconds = time.perf_counter() - started
        text = log_file.read_text(errors="replace")
        fields = usage_file.read_text().split() if usage_file.exists() else []
    if process.returncode != 0 or len(fields) < 3:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}:\n{text[-3000:]}")
    maxrss, user, system = int(fields[-3]), float(fields[-2]), float(fields[-1])
    return ProcessUsage(seconds, maxrss, user + system, text)


class RegistryDestination:
    """A fresh docker-registry, filled by ``skopeo sync`` or by a skopeo copy loop."""

    def __init__(
        self, method: str, skopeo: SkopeoEnv, upstream: str, repo: str, dest: ServerHandle,
        dataset: MirrorDataset,
    ) -> None:  # fmt: skip
        self.method = method
        self.skopeo = skopeo
        self.upstream = upstream
        self.repo = repo
        self.dest = dest
        self.dataset = dataset

    def sync(self) -> Measurement:
        dest_cpu = tree_cpu_seconds(self.dest.pid)
        started = time.perf_counter()
        runs = self._sync_loop() if self.method == "copy-loop" else [self._skopeo_sync()]
        seconds = time.perf_counter() - started
        dest_cpu = tree_cpu_seconds(self.dest.pid) - dest_cpu
        tags = self._dest_tags()
        if sorted(tags) != sorted(self.dataset.tags):
            raise RuntimeError(f"{self.method}: destination has {len(tags)} tags, not all")
        return Measurement(
            seconds,
            max(r.maxrss_kib for r in runs) / 1024,
            sum(r.cpu_seconds for r in runs),
            {"processes": float(len(runs)), "dest_cpu": dest_cpu},
        )

    def pids(self) -> list[int]:
        return [self.dest.pid]

    def _skopeo_sync(self) -> ProcessUsage:
        namespace = self.repo.rsplit("/", 1)[0]
        return run_with_usage(
            self.skopeo.argv(
                "sync", "--src", "docker", "--dest", "docker", "--all",
                "--src-tls-verify=false", "--dest-tls-verify=false",
                f"{self.upstream}/{self.repo}", f"{self.dest.host}/{namespace}",
            ),
            self.skopeo.env,
            SKOPEO_TIMEOUT,
        )  # fmt: skip

    def _sync_loop(self) -> list[ProcessUsage]:
        """Quay's worker: list the upstream tags, then one ``skopeo copy --all`` per tag."""
        listing = run_with_usage(
            self.skopeo.argv(
                "list-tags", "--tls-verify=false", f"docker://{self.upstream}/{self.repo}"
            ),
            self.skopeo.env,
            SKOPEO_TIMEOUT,
        )
        tags = _json_tags(listing.stdout)
        runs = [listing]
        deadline = time.monotonic() + SKOPEO_TIMEOUT
        for tag in tags:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("copy loop took longer than its deadline")
            argv = self.skopeo.argv(
                "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                f"docker://{self.upstream}/{self.repo}:{tag}",
                f"docker://{self.dest.host}/{self.repo}:{tag}",
            )  # fmt: skip
            runs.append(run_with_usage(argv, self.skopeo.env, left))
        return runs

    def _dest_tags(self) -> list[str]:
        response = httpx.get(
            f"{self.dest.url}/v2/{self.repo}/tags/list?n=10000", trust_env=False, timeout=30
        )
        response.raise_for_status()
        return list(response.json().get("tags") or [])


def _json_tags(text: str) -> list[str]:
    start = text.find("{")
    return list(json.loads(text[start:])["Tags"]) if start >= 0 else []


@contextlib.contextmanager
def registry_destination(
    method: str, workdir: Path, skopeo: SkopeoEnv, upstream: str, repo: str,
    dataset: MirrorDataset,
) -> Iterator[RegistryDestination]:  # fmt: skip
    with run_docker_registry(workdir) as dest:
        yield RegistryDestination(method, skopeo, upstream, repo, dest, dataset)


TOOLS = ("moorage", "moorage-worker", "skopeo-sync", "copy-loop")
OPTIONAL_TOOLS = ("moorage-pg",)  # Moorage (worker in serve) on PostgreSQL
