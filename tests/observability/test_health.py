"""GET /health/instance and /health/endtoend: 200 when healthy, 503 when a service is not."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from moorage.app import create_app
from moorage.config import Settings, load_settings
from moorage.db.engine import Database
from moorage.errors import StorageError
from moorage.services.health import HealthService
from moorage.storage.base import ChunkObserver, StorageDriver
from moorage.storage.factory import build_driver

pytestmark = pytest.mark.anyio
ENDPOINTS = ["/health/instance", "/health/endtoend"]


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, database: Database, storage: StorageDriver | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=database, storage=storage)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
            yield c


def secured(base_config: dict[str, Any]) -> Settings:
    """Authentication on: health endpoints must not need it."""
    return load_settings(None, **{**base_config, "INSECURE_OPEN_REGISTRY_NO_AUTH": False})


class UnwritableStorage:
    """A driver whose writes fail, as a full disk or a revoked S3 permission would."""

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], observer: ChunkObserver | None = None
    ) -> int:
        raise StorageError(f"write of {key!r} refused: bucket is read-only")


class HangingStorage(UnwritableStorage):
    async def write(
        self, key: str, chunks: AsyncIterable[bytes], observer: ChunkObserver | None = None
    ) -> int:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_healthy_answers_200_in_quays_shape(
    base_config: dict[str, Any], database: Database, path: str
) -> None:
    settings = secured(base_config)
    async with serve(settings, database) as client:
        response = await client.get(path)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "data": {"services": {"process": True, "database": True, "storage": True}},
            "status_code": 200,
        }
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Request-ID"]
    driver = build_driver(settings)
    try:
        assert [key async for key in driver.list("_health")] == []  # probes clean up
    finally:
        await driver.close()


@pytest.mark.parametrize("backend", ["sqlite-fs"])
async def test_unwritable_storage_directory_answers_503_then_recovers(
    base_config: dict[str, Any], database: Database
) -> None:
    settings = secured(base_config)
    root = Path(settings.storage_entry[1]["storage_path"])
    async with serve(settings, database) as client:
        assert (await client.get("/health/instance")).status_code == 200
        # Tests often run as root, which a read-only mode does not stop: put a file where the
        # driver's staging directory must be, so every write fails as on a read-only mount.
        shutil.rmtree(root / "_tmp")
        (root / "_tmp").write_text("not a directory")
        for path in ENDPOINTS:
            response = await client.get(path)
            assert response.status_code == 503, response.text
            assert response.json() == {
                "data": {"services": {"process": True, "database": True, "storage": False}},
                "status_code": 503,
            }
        (root / "_tmp").unlink()
        (root / "_tmp").mkdir()
        assert (await client.get("/health/instance")).status_code == 200


async def test_storage_refusing_writes_answers_503(
    base_config: dict[str, Any], database: Database
) -> None:
    settings = secured(base_config)
    driver = build_driver(settings)
    try:
        async with serve(settings, database, UnwritableStorage(driver)) as client:  # type: ignore[arg-type]
            for path in ENDPOINTS:
                response = await client.get(path)
                assert response.status_code == 503
                assert response.json()["data"]["services"]["storage"] is False
                assert response.json()["data"]["services"]["database"] is True
    finally:
        await driver.close()


@pytest.mark.parametrize("backend", ["sqlite-fs"])
async def test_unreachable_database_answers_503(base_config: dict[str, Any]) -> None:
    settings = secured(base_config)
    closed = Database(f"postgresql://moorage@127.0.0.1:{closed_port()}/moorage")
    try:
        async with serve(settings, closed) as client:
            for path in ENDPOINTS:
                response = await client.get(path)
                assert response.status_code == 503
                assert response.json() == {
                    "data": {"services": {"process": True, "database": False, "storage": True}},
                    "status_code": 503,
                }
    finally:
        await closed.dispose()


@pytest.mark.parametrize("backend", ["sqlite-fs"])
async def test_endtoend_also_needs_the_schema(base_config: dict[str, Any], tmp_path: Path) -> None:
    """A reachable database without Moorage's tables: the instance is up, end-to-end is not."""
    settings = secured(base_config)
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        async with serve(settings, empty) as client:
            assert (await client.get("/health/instance")).status_code == 200
            response = await client.get("/health/endtoend")
            assert response.status_code == 503
            assert response.json()["data"]["services"]["database"] is False
    finally:
        await empty.dispose()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("backend", ["sqlite-fs"])
async def test_a_hanging_probe_is_bounded(
    settings: Settings, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    driver = build_driver(settings)
    try:
        health = HealthService(database, HangingStorage(driver), timeout=0.2)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await health.instance() == {"process": True, "database": True, "storage": False}
        assert loop.time() - started < 2
    finally:
        await driver.close()
    assert "storage did not answer within 0.2s" in caplog.text
