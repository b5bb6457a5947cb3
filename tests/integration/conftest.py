"""Fixtures for integration tests against real clients (skopeo, podman) and real servers.

Each test gets its own ``moorage serve`` process on the backend chosen by the ``backend``
fixture, and a throwaway client environment: HOME, containers.conf, storage.conf,
registries.conf, auth file and signature policy all live in ``tmp_path``, so no global container
configuration or storage is read or written (except skopeo's blob-info cache, which as root is
always /var/lib/containers/cache).

Missing client binaries skip the tests with a message, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from moorage.db.engine import Database
from tests.support.server import ServerHandle, run_moorage

CLIENT_TIMEOUT = 120.0
SKOPEO = "skopeo"
PODMAN = "podman"
DOCKER_REGISTRY = "/usr/bin/docker-registry"


def require_binary(name: str) -> str:
    """Absolute path of a program; skip the test if it is missing (fail under CI=true)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: integration test needs the real {name} binary"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (required under CI=true)")
        pytest.skip(message)
    return path


class ClientError(AssertionError):
    """A client program exited non-zero; the message carries its command line and output."""


@dataclass(frozen=True)
class Clients:
    """Runs skopeo and podman in an isolated environment.

    Configuration files live in ``root`` (under the test's tmp_path). podman's run root and tmp
    dir live in ``run_root``, a short directory under /tmp: podman refuses a runroot longer than
    50 characters (it must fit unix socket paths), which pytest's tmp_path easily exceeds.
    """

    root: Path
    run_root: Path
    env: dict[str, str]
    policy: Path

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = CLIENT_TIMEOUT
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            list(argv),
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ClientError(
                f"{' '.join(argv)}\nexited {result.returncode}\n"
                f"stdout: {result.stdout.decode(errors='replace')[-3000:]}\n"
                f"stderr: {result.stderr.decode(errors='replace')[-3000:]}"
            )
        return result

    def skopeo(
        self, *args: str, check: bool = True, timeout: float = CLIENT_TIMEOUT
    ) -> subprocess.CompletedProcess[bytes]:
        binary = require_binary(SKOPEO)
        return self.run([binary, "--policy", str(self.policy), *args], check=check, timeout=timeout)

    def skopeo_json(self, *args: str) -> Any:
        return json.loads(self.skopeo(*args).stdout)

    def podman_storage(self, store: str = "default") -> list[str]:
        """Global podman flags selecting the throwaway vfs storage named ``store``."""
        return [
            "--root",
            str(self.root / f"podman-{store}"),
            "--runroot",
            str(self.run_root / store / "run"),
            "--tmpdir",
            str(self.run_root / store / "tmp"),
            "--storage-driver",
            "vfs",
        ]

    def podman(
        self,
        *args: str,
        store: str = "default",
        check: bool = True,
        timeout: float = CLIENT_TIMEOUT,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run podman on the throwaway vfs storage named ``store`` (created on first use)."""
        binary = require_binary(PODMAN)
        return self.run([binary, *self.podman_storage(store), *args], check=check, timeout=timeout)


def _write_client_config(root: Path, run_root: Path) -> Clients:
    home = root / "home"
    home.mkdir(parents=True)
    policy = root / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    # An empty registries.conf: no unqualified-search registries, no mirrors, no blocks.
    registries = root / "registries.conf"
    registries.write_text("")
    # podman refuses to run when REGISTRY_AUTH_FILE names a file that does not exist.
    auth = root / "auth.json"
    auth.write_text(json.dumps({"auths": {}}))
    # Keep podman's tmp dir, events log, cgroup manager and network config off the system's
    # /run, journald, systemd and /etc (storage flags are passed on every call as well).
    containers_conf = root / "containers.conf"
    containers_conf.write_text(
        "[engine]\n"
        f'tmp_dir = "{run_root / "default" / "tmp"}"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{root / "podman-events.log"}"\n'
        'cgroup_manager = "cgroupfs"\n'
        "[network]\n"
        f'network_config_dir = "{root / "podman-net"}"\n'
    )
    storage_conf = root / "storage.conf"
    storage_conf.write_text(
        "[storage]\n"
        'driver = "vfs"\n'
        f'graphroot = "{root / "podman-default"}"\n'
        f'runroot = "{run_root / "default" / "run"}"\n'
    )
    tmp = root / "tmp"
    tmp.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "CONTAINERS_CONF": str(containers_conf),
        "CONTAINERS_STORAGE_CONF": str(storage_conf),
        "CONTAINERS_REGISTRIES_CONF": str(registries),
        "REGISTRY_AUTH_FILE": str(auth),
        "LANG": "C.UTF-8",
    }
    return Clients(root=root, run_root=run_root, env=env, policy=policy)


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Clients]:
    """An isolated skopeo/podman environment (needs skopeo; podman is checked when used)."""
    require_binary(SKOPEO)
    run_root = Path(tempfile.mkdtemp(prefix="mrg-", dir="/tmp"))
    try:
        yield _write_client_config(tmp_path / "clients", run_root)
    finally:
        shutil.rmtree(run_root, ignore_errors=True)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Random data seeded per test (stable across runs, distinct between tests)."""
    return random.Random(zlib.crc32(request.node.nodeid.encode()))


async def _truncate_postgres(uri: str) -> None:
    db = Database(uri)
    try:
        async with db.write_engine.begin() as conn:
            rows = await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
            tables = ", ".join(f'"{row[0]}"' for row in rows)
            if tables:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await db.dispose()


@pytest.fixture
def moorage(base_config: dict[str, Any], backend: str, tmp_path: Path) -> Iterator[ServerHandle]:
    """A ``moorage serve`` process for this test on ``backend``, with empty database/storage.

    Its log is printed at teardown, which pytest shows for failed tests.
    """
    if backend == "postgres-s3":
        # The PostgreSQL database is shared by the session: start from empty tables, as the
        # storage bucket is new for every test.
        asyncio.run(_truncate_postgres(str(base_config["DB_URI"])))
    with run_moorage(base_config, tmp_path / "moorage") as handle:
        try:
            yield handle
        finally:
            print(f"--- moorage log ({handle.log_path}) ---\n{handle.log()}")


@pytest.fixture
def docker_registry_binary() -> str:
    if not Path(DOCKER_REGISTRY).exists():
        message = f"{DOCKER_REGISTRY} is not installed (Debian package docker-registry)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (required under CI=true)")
        pytest.skip(message)
    return DOCKER_REGISTRY
