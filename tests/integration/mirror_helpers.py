"""Helpers shared by the mirror integration tests (tests/integration/test_mirror_*.py).

Two ways to run Moorage:

- ``in_process_moorage``: the app in the test's event loop (worker optional), the API through
  an ASGI client, and optionally a real HTTP listener (uvicorn on a free 127.0.0.1 port) so that
  skopeo can pull from it. Blocking client programs must then run in a thread
  (``asyncio.to_thread``) so the in-process server keeps serving.
- ``run_moorage`` (tests/support/server.py) plus ``run_worker_process``: real ``moorage serve``
  and ``moorage worker`` processes sharing one config file, for kill -9 and multi-worker tests.

Accounts: user ``admin`` (owns namespace ``admin``; API clients use an access token of admin),
robot ``admin+mirror`` and user ``reader``, who gets read access to every repository made with
``create_mirror``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from moorage.app import create_app
from moorage.auth import scopes as sc
from moorage.config import Settings, load_settings
from moorage.db.engine import Database
from moorage.services.accounts import AccountService
from moorage.services.audit import Actor
from moorage.storage.base import StorageDriver
from tests.integration.conftest import Clients
from tests.support.server import HOST, ServerHandle, stop_process

ADMIN = ("admin", "mirror admin password")
READER = ("reader", "reader password")
ROBOT = "admin+mirror"
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
FINISHED = {"SUCCESS", "FAIL", "CANCEL"}
WORKER_START_TIMEOUT = 30.0


def mirror_config(base_config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """``base_config`` with authentication on, loopback upstreams allowed and a 1 s poll."""
    return {
        **base_config,
        "INSECURE_OPEN_REGISTRY_NO_AUTH": False,
        "SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"],
        "REPO_MIRROR_INTERVAL": 1,
        **overrides,
    }


async def bootstrap_accounts(accounts: AccountService) -> dict[str, str]:
    """Create admin, its mirror robot and the reader (once per database).

    Returns headers with a fresh access token of admin: API calls then skip the deliberately
    slow password hash that Basic credentials cost on every request.
    """
    if not await accounts.has_users():
        admin = await accounts.create_user(*ADMIN, None, Actor.system())
        await accounts.create_robot("admin", "mirror", None, Actor(accounts.principal_for(admin)))
        await accounts.create_user(*READER, None, Actor.system())
    admin = await accounts.get(ADMIN[0])
    scopes = [s for s in sc.ALL_SCOPES if s != sc.SUPER_USER]
    created = await accounts.create_token(admin.id, "mirror tests", scopes, Actor.system())
    return {"Authorization": f"Bearer {created.secret}"}


# --- the upstream registry -------------------------------------------------------------------


def push_upstream(
    clients: Clients,
    upstream: ServerHandle,
    layout: Path,
    ref: str,
    repo: str,
    *,
    tag: str | None = None,
    all_images: bool = False,
    v2s2: bool = False,
    creds: tuple[str, str] | None = None,
) -> None:
    """skopeo copy ``oci:layout:ref`` to ``upstream/repo:tag`` (TLS not verified)."""
    args = ["copy", "--dest-tls-verify=false"]
    if all_images:
        args.append("--all")
    if v2s2:
        args += ["--format", "v2s2"]
    if creds:
        args += ["--dest-creds", ":".join(creds)]
    clients.skopeo(*args, f"oci:{layout}:{ref}", f"docker://{upstream.host}/{repo}:{tag or ref}")


def upstream_manifest(
    upstream: ServerHandle, repo: str, ref: str, creds: tuple[str, str] | None = None
) -> httpx.Response:
    """GET a manifest from the upstream registry (any type), asserting 200."""
    response = httpx.get(
        f"{upstream.url}/v2/{repo}/manifests/{ref}",
        headers={"Accept": MANIFEST_ACCEPT},
        auth=creds,
        verify=False,  # noqa: S501 - test upstreams use throwaway self-signed certificates
        trust_env=False,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def upstream_digest(upstream: ServerHandle, repo: str, ref: str) -> str:
    return str(upstream_manifest(upstream, repo, ref).headers["Docker-Content-Digest"])


def delete_upstream_tag(upstream: ServerHandle, repo: str, ref: str) -> None:
    """Delete the manifest a tag points at (docker-registry has no tag-only delete)."""
    digest = upstream_digest(upstream, repo, ref)
    response = httpx.delete(
        f"{upstream.url}/v2/{repo}/manifests/{digest}", trust_env=False, timeout=30
    )
    assert response.status_code == 202, response.text


# --- Moorage in the test's event loop ----------------------------------------------------------


@dataclass
class InProcessMoorage:
    app: FastAPI
    settings: Settings
    db: Database
    client: httpx.AsyncClient  # authenticated as admin, through ASGI
    url: str | None = None  # real HTTP listener, when started with http=True
    host: str | None = None

    @property
    def storage(self) -> StorageDriver:
        driver: StorageDriver = self.app.state.storage
        return driver


@contextlib.asynccontextmanager
async def _serve_http(app: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, lifespan="off", log_level="error", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 10
        # uvicorn offers no event for 'started', only the flag.
        while not server.started and not task.done() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert server.started, "in-process uvicorn did not start"
        yield f"{HOST}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        sock.close()


@contextlib.asynccontextmanager
async def in_process_moorage(
    base_config: dict[str, Any],
    database: Database,
    *,
    worker: bool = True,
    http: bool = False,
    **overrides: Any,
) -> AsyncIterator[InProcessMoorage]:
    settings = load_settings(None, **mirror_config(base_config, **overrides))
    app = create_app(settings, database=database, run_worker=worker)
    async with app.router.lifespan_context(app):
        headers = await bootstrap_accounts(app.state.accounts)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://moorage.test", headers=headers
        ) as client:
            moorage = InProcessMoorage(app, settings, database, client)
            if not http:
                yield moorage
                return
            async with _serve_http(app) as host:
                moorage.host = host
                moorage.url = f"http://{host}"
                yield moorage


# --- the mirror API ---------------------------------------------------------------------------


async def create_mirror(
    client: httpx.AsyncClient,
    external_reference: str,
    repo: str,
    patterns: list[str],
    **extra: Any,
) -> None:
    """Create ``admin/repo``, give ``reader`` read access, and configure its mirror."""
    response = await client.post(
        "/api/v1/repository",
        json={"repository": repo, "namespace": "admin", "visibility": "private"},
    )
    assert response.status_code == 201, response.text
    response = await client.put(
        f"/api/v1/repository/admin/{repo}/permissions/user/{READER[0]}", json={"role": "read"}
    )
    assert response.status_code == 200, response.text
    body = {
        "external_reference": external_reference,
        "sync_interval": 3600,
        "sync_start_date": "2099-01-01T00:00:00Z",
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": patterns},
        "robot_username": ROBOT,
        "external_registry_config": {"verify_tls": False},
        **extra,
    }
    response = await client.post(f"/api/v1/repository/admin/{repo}/mirror", json=body)
    assert response.status_code == 201, response.text


async def get_mirror(client: httpx.AsyncClient, repo: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/repository/admin/{repo}/mirror")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def list_runs(client: httpx.AsyncClient, repo: str) -> list[dict[str, Any]]:
    """Runs of the mirror, newest first."""
    response = await client.get(f"/api/v1/repository/admin/{repo}/mirror/runs?limit=100")
    assert response.status_code == 200, response.text
    return list(response.json()["runs"])


async def sync_now(client: httpx.AsyncClient, repo: str) -> None:
    response = await client.post(f"/api/v1/repository/admin/{repo}/mirror/sync-now")
    assert response.status_code == 204, response.text


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.2
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def wait_finished(
    client: httpx.AsyncClient, repo: str, after_run: int = 0, timeout: float = 60
) -> dict[str, Any]:
    """The mirror body once a run newer than ``after_run`` has finished and the row is idle."""

    async def check() -> dict[str, Any] | None:
        body = await get_mirror(client, repo)
        last = body["last_sync"]
        if body["sync_status"] in FINISHED and last and last["id"] > after_run:
            return body
        return None

    result: dict[str, Any] = await wait_for(check, timeout, f"a finished sync of {repo}")
    return result


async def sync_and_wait(
    client: httpx.AsyncClient, repo: str, timeout: float = 60
) -> dict[str, Any]:
    """sync-now, then the mirror body once that sync has finished."""
    before = (await get_mirror(client, repo))["last_sync"]
    await sync_now(client, repo)
    return await wait_finished(client, repo, before["id"] if before else 0, timeout)


async def local_tags(client: httpx.AsyncClient, repo: str) -> list[str]:
    response = await client.get(f"/v2/admin/{repo}/tags/list")
    assert response.status_code == 200, response.text
    return list(response.json()["tags"])


async def local_manifest(client: httpx.AsyncClient, repo: str, ref: str) -> httpx.Response:
    return await client.get(
        f"/v2/admin/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
    )


# --- `moorage worker` processes ---------------------------------------------------------------


@contextlib.contextmanager
def run_worker_process(config_path: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``moorage worker --config config_path``; waits (bounded) until it has started polling.

    Stopped by PID on exit (SIGTERM, then SIGKILL), unless the test already killed it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moorage", "worker", "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while "mirror worker" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moorage worker did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        yield process
    finally:
        stop_process(process)


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process this test started, by PID, and reap it."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
