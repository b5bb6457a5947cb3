"""BLOB_REDIRECTS: blob GETs answer 307 to a presigned storage URL when the driver offers one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from moorage.app import create_app
from moorage.config import load_settings
from moorage.db.engine import Database
from tests.support.images import push_blob

pytestmark = pytest.mark.anyio


@pytest.fixture
async def redirecting(
    base_config: dict[str, Any], database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(None, **{**base_config, "BLOB_REDIRECTS": True})
    app = create_app(settings, database=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
            yield c


async def test_get_redirects_to_storage_and_head_answers_directly(
    redirecting: httpx.AsyncClient, backend: str
) -> None:
    data = os.urandom(300_000)
    digest = await push_blob(redirecting, "acme/app", data)
    url = f"/v2/acme/app/blobs/{digest}"

    head = await redirecting.head(url)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest

    response = await redirecting.get(url)
    if backend == "sqlite-fs":  # the filesystem driver has no URL of its own: served directly
        assert response.status_code == 200
        assert response.content == data
        return
    assert response.status_code == 307
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Cache-Control"] == "no-store"
    location = response.headers["Location"]
    assert location.startswith("http://127.0.0.1:")
    assert "X-Amz-Signature=" in location
    async with httpx.AsyncClient(trust_env=False) as storage:
        whole = await storage.get(location)
        part = await storage.get(location, headers={"Range": "bytes=1000-1999"})
    assert whole.status_code == 200
    assert whole.content == data
    assert part.status_code == 206
    assert part.content == data[1000:2000]

    # Unknown blobs are still answered by Moorage itself.
    missing = await redirecting.get("/v2/acme/app/blobs/sha256:" + "1" * 64)
    assert missing.status_code == 404


async def test_off_by_default(client: httpx.AsyncClient) -> None:
    data = os.urandom(1000)
    digest = await push_blob(client, "acme/app", data)
    response = await client.get(f"/v2/acme/app/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data
