"""The HTTP listener of a standalone `moorage worker` (WORKER_METRICS_PORT / --metrics-port).

Serves, unauthenticated like the same paths of `moorage serve`:

- ``GET /metrics``: the worker's Prometheus metrics (Quay's ``quay_repository_mirror_*``,
  ``moorage_mirror_bytes_copied_total``, storage and database latency);
- ``GET /health/instance`` and ``GET /health/endtoend``: the database and storage checks of
  ``services/health.py``, in Quay's shape, 200 or 503.

It runs on uvicorn in the worker's event loop. uvicorn's own signal handling is switched off:
the worker owns SIGTERM/SIGINT, hands its running syncs back, and only then is the listener
closed, so the last scrape sees the worker stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from moorage.api.health import routes as health_routes
from moorage.config import Settings
from moorage.db.engine import Database
from moorage.errors import ConfigError
from moorage.observability.instrument import InstrumentedStorage, instrument_database
from moorage.observability.metrics import Metrics, metrics_endpoint
from moorage.services.health import HealthService
from moorage.storage.base import StorageDriver

log = logging.getLogger(__name__)
START_TIMEOUT = 30.0


def worker_app(metrics: Metrics, health: HealthService) -> Starlette:
    app = Starlette(
        routes=[Route("/metrics", metrics_endpoint(metrics), methods=["GET"]), *health_routes()]
    )
    app.state.health = health
    return app


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the worker's own handlers stay in place."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def worker_listener(
    settings: Settings,
    db: Database,
    storage: StorageDriver,
    metrics: Metrics,
    log_level: str = "info",
) -> AsyncIterator[StorageDriver]:
    """Serve /metrics and /health/* while the block runs, if WORKER_METRICS_PORT is set.

    Yields the storage driver the worker should use: instrumented (timed) when metrics are
    served, else ``storage`` itself.
    """
    if settings.WORKER_METRICS_PORT is None:
        yield storage
        return
    listening = _bind(settings.WORKER_METRICS_HOST, settings.WORKER_METRICS_PORT)
    timed = InstrumentedStorage(storage, metrics.io)
    uninstrument = instrument_database(db, metrics.io)
    config = uvicorn.Config(
        worker_app(metrics, HealthService(db, timed)),
        log_level=log_level,
        log_config=None,  # records go through the handlers of observability.logs
        access_log=False,
        lifespan="off",
        proxy_headers=False,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        await _started(server, task)
        host, port = listening.getsockname()[:2]
        log.info("worker metrics on http://%s:%s/metrics", host, port)
        yield timed
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listening.close()
        uninstrument()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a ConfigError naming the address (not uvicorn's sys.exit)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"worker metrics: cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"worker metrics: cannot listen on {host}:{port}: {exc}") from exc
    return sock


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while not server.started:
        if task.done():
            task.result()  # re-raise what stopped it
            raise RuntimeError("the worker metrics listener stopped while starting")
        if loop.time() > deadline:
            raise RuntimeError("the worker metrics listener did not start")
        await asyncio.sleep(0.02)
