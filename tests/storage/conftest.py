"""Fixtures for the storage driver contract: every driver, the moto S3 server, fresh buckets."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from moorage.storage.base import StorageDriver
from moorage.storage.filesystem import FilesystemDriver
from moorage.storage.s3 import MIN_PART, S3Driver
from tests.support.s3server import reset_s3_server, s3_storage_params

# Small parts so a 12 MiB object needs three of them.
TEST_PART_SIZE = MIN_PART


@pytest.fixture
def s3_params(s3_endpoint: str) -> Iterator[dict[str, Any]]:
    """S3Storage parameters for a fresh bucket; the server forgets everything afterwards."""
    params = s3_storage_params(s3_endpoint, f"test-{uuid.uuid4().hex[:20]}")
    params["part_size"] = TEST_PART_SIZE
    yield params
    reset_s3_server(s3_endpoint)


@pytest.fixture
async def s3_driver(s3_params: dict[str, Any], anyio_backend: str) -> AsyncIterator[S3Driver]:
    driver = S3Driver.from_params(s3_params)
    yield driver
    await driver.close()


@pytest.fixture(params=["filesystem", "s3"])
async def driver(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[StorageDriver]:
    """Each driver in turn; the contract tests run once per driver."""
    instance: StorageDriver
    if request.param == "filesystem":
        instance = FilesystemDriver(tmp_path / "storage")
    else:
        # Requested lazily so `-k filesystem` never starts the moto server.
        instance = S3Driver.from_params(request.getfixturevalue("s3_params"))
    yield instance
    await instance.close()
