"""End-to-end push and pull through the real ASGI app, on every backend."""

from __future__ import annotations

import httpx
import pytest

from tests.support.images import OCI_INDEX, make_image, make_index, push_blob, push_image, sha256

pytestmark = pytest.mark.anyio


async def test_base_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_push_and_pull_image(client: httpx.AsyncClient) -> None:
    image = make_image()
    digest = await push_image(client, "acme/app", image, "v1")
    assert digest == image.digest

    response = await client.get("/v2/acme/app/manifests/v1", headers={"Accept": image.media_type})
    assert response.status_code == 200
    assert response.content == image.manifest
    assert response.headers["Docker-Content-Digest"] == image.digest
    assert response.headers["Content-Type"] == image.media_type

    for blob in image.blobs:
        got = await client.get(f"/v2/acme/app/blobs/{sha256(blob)}")
        assert got.status_code == 200
        assert got.content == blob

    tags = await client.get("/v2/acme/app/tags/list")
    assert tags.json() == {"name": "acme/app", "tags": ["v1"]}


async def test_chunked_upload(client: httpx.AsyncClient) -> None:
    data = b"x" * 5000 + b"y" * 3000
    start = await client.post("/v2/acme/chunks/blobs/uploads/")
    assert start.status_code == 202
    location = start.headers["Location"]
    first = await client.patch(
        location,
        content=data[:5000],
        headers={"Content-Range": "0-4999", "Content-Type": "application/octet-stream"},
    )
    assert first.status_code == 202
    assert first.headers["Range"] == "0-4999"
    wrong = await client.patch(location, content=b"zz", headers={"Content-Range": "10-11"})
    assert wrong.status_code == 416
    second = await client.patch(
        location, content=data[5000:], headers={"Content-Range": "5000-7999"}
    )
    assert second.status_code == 202
    done = await client.put(location, params={"digest": sha256(data)})
    assert done.status_code == 201, done.text
    got = await client.get(f"/v2/acme/chunks/blobs/{sha256(data)}")
    assert got.content == data


async def test_digest_mismatch_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/acme/bad/blobs/uploads/", params={"digest": sha256(b"other")}, content=b"data"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    head = await client.head(f"/v2/acme/bad/blobs/{sha256(b'other')}")
    assert head.status_code == 404


async def test_manifest_with_missing_blob_rejected(client: httpx.AsyncClient) -> None:
    image = make_image()
    await push_blob(client, "acme/partial", image.config)
    response = await client.put(
        "/v2/acme/partial/manifests/v1",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    tags = await client.get("/v2/acme/partial/tags/list")
    assert tags.json()["tags"] == []


async def test_index_requires_children(client: httpx.AsyncClient) -> None:
    amd, arm = make_image(architecture="amd64"), make_image(architecture="arm64")
    index = make_index([(amd, "amd64"), (arm, "arm64")])
    await push_image(client, "acme/multi", amd, amd.digest)
    missing = await client.put(
        "/v2/acme/multi/manifests/latest", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert missing.status_code == 400
    await push_image(client, "acme/multi", arm, arm.digest)
    ok = await client.put(
        "/v2/acme/multi/manifests/latest", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert ok.status_code == 201
    assert ok.headers["Docker-Content-Digest"] == sha256(index)
