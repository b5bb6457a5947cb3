"""Oversized and pathological bodies are refused with clear errors, never a 500 (issue #6 item 3):
manifests over MAXIMUM_MANIFEST_SIZE, blobs over MAXIMUM_LAYER_SIZE (monolithic, chunked, or
merely declared), JSON nested thousands deep or holding 5000-digit numbers, forged page tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from moorage.db.models import Blob, Upload
from tests.api.conftest import World, basic
from tests.hostile.rawasgi import error_shape_problems, send

pytestmark = pytest.mark.anyio
MANIFEST_LIMIT = 4096
BLOB_LIMIT = 65536
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MiB = 1024 * 1024


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {"MAXIMUM_MANIFEST_SIZE": MANIFEST_LIMIT, "MAXIMUM_LAYER_SIZE": BLOB_LIMIT}


@pytest.fixture
def v2(world: World) -> httpx.AsyncClient:
    world.client.headers.update(basic("$oauthtoken", world.tokens["alice"]))
    return world.client


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    (error,) = response.json()["errors"]
    assert error["code"] == code, error
    return str(error["message"])


async def padded_manifest(v2: httpx.AsyncClient, size: int) -> bytes:
    """A manifest of ``size`` bytes that references the blobs of acme/app:latest."""
    latest = await v2.get("/v2/acme/app/manifests/latest", headers={"Accept": OCI_MANIFEST})
    doc = json.loads(latest.content)
    doc["annotations"] = {"pad": ""}
    base = len(json.dumps(doc).encode())
    doc["annotations"]["pad"] = "x" * (size - base)
    payload = json.dumps(doc).encode()
    assert len(payload) == size
    return payload


async def uploads_left(world: World) -> int:
    async with world.db.transaction(readonly=True) as session:
        return int((await session.execute(select(func.count()).select_from(Upload))).scalar_one())


async def test_manifest_size_limit(world: World, v2: httpx.AsyncClient) -> None:
    at_limit = await padded_manifest(v2, MANIFEST_LIMIT)
    ok = await v2.put(
        "/v2/acme/app/manifests/at-limit", content=at_limit, headers={"Content-Type": OCI_MANIFEST}
    )
    assert ok.status_code == 201, ok.text
    over = await padded_manifest(v2, MANIFEST_LIMIT + 1)
    refused = await v2.put(
        "/v2/acme/app/manifests/over", content=over, headers={"Content-Type": OCI_MANIFEST}
    )
    assert f"limit of {MANIFEST_LIMIT} bytes" in oci_error(refused, 413, "SIZE_INVALID")
    assert (await v2.get("/v2/acme/app/manifests/over")).status_code == 404
    # Sent without Content-Length (chunked): refused while streaming, same error.

    async def chunked() -> Any:
        for i in range(0, len(over), 1000):
            yield over[i : i + 1000]

    streamed = await v2.put(
        "/v2/acme/app/manifests/over", content=chunked(), headers={"Content-Type": OCI_MANIFEST}
    )
    assert f"limit of {MANIFEST_LIMIT} bytes" in oci_error(streamed, 413, "SIZE_INVALID")


async def test_declared_lengths_are_refused_before_reading(world: World) -> None:
    auth = ("authorization", basic("$oauthtoken", world.tokens["alice"])["Authorization"])
    huge = ("content-length", str(10**12))
    cases = [
        ("PUT", "/v2/acme/app/manifests/big", "limit of 4096 bytes"),
        ("POST", f"/v2/acme/app/blobs/uploads/?digest={digest(b'x')}", "maximum blob size"),
    ]
    start = await v2_start(world)
    cases += [
        ("PATCH", f"/v2/acme/app/blobs/uploads/{start}", "maximum blob size"),
        ("PUT", f"/v2/acme/app/blobs/uploads/{start}?digest={digest(b'x')}", "maximum blob size"),
    ]
    for method, target, text in cases:
        response = await send(world.app, method, target, [auth, huge], b"")
        assert response.status == 413, (target, response.text)
        assert text in response.json()["errors"][0]["message"]
    assert await uploads_left(world) == 1  # the one opened above, untouched


async def v2_start(world: World) -> str:
    auth = ("authorization", basic("$oauthtoken", world.tokens["alice"])["Authorization"])
    response = await send(world.app, "POST", "/v2/acme/app/blobs/uploads/", [auth])
    assert response.status == 202, response.text
    return response.headers["location"].rsplit("/", 1)[1]


async def test_blob_size_limit(world: World, v2: httpx.AsyncClient) -> None:
    exact = os.urandom(BLOB_LIMIT)
    ok = await v2.post(f"/v2/acme/app/blobs/uploads/?digest={digest(exact)}", content=exact)
    assert ok.status_code == 201, ok.text
    over = exact + b"!"
    refused = await v2.post(f"/v2/acme/app/blobs/uploads/?digest={digest(over)}", content=over)
    assert f"{BLOB_LIMIT} bytes" in oci_error(refused, 413, "SIZE_INVALID")
    assert (await v2.head(f"/v2/acme/app/blobs/{digest(over)}")).status_code == 404
    assert await uploads_left(world) == 0  # the refused monolithic upload left nothing behind

    # Chunked: the PATCH that crosses the limit is refused; the session stays usable.
    start = await v2.post("/v2/acme/app/blobs/uploads/")
    location = start.headers["Location"]
    first = os.urandom(40_000)
    assert (await v2.patch(location, content=first)).status_code == 202

    async def stream(data: bytes) -> Any:
        yield data

    crossing = await v2.patch(location, content=stream(os.urandom(30_000)))
    assert f"{BLOB_LIMIT} bytes" in oci_error(crossing, 413, "SIZE_INVALID")
    status = await v2.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == f"0-{len(first) - 1}"
    done = await v2.put(location, params={"digest": digest(first)})
    assert done.status_code == 201, done.text
    async with world.db.transaction(readonly=True) as session:
        sizes = (await session.execute(select(Blob.size))).scalars().all()
    assert max(sizes) <= BLOB_LIMIT


PATHOLOGICAL_MANIFESTS = {
    "deep": b'{"schemaVersion": 2, "manifests": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "5000-digit number": b'{"schemaVersion": 2, "config": {"size": 1'
    + b"0" * 5000
    + b'}, "layers": []}',
    "not utf-8": b"\xff\xfe" + b"{}" * 10,
    "unterminated": b"[" * 4000,
}


async def test_pathological_manifests_are_invalid_not_errors(
    world: World, v2: httpx.AsyncClient
) -> None:
    # The deep one is 200 kB: raise the limit for it through the service, as a config would.
    world.app.state.services.manifests.max_manifest_size = 1024 * 1024
    for name, payload in PATHOLOGICAL_MANIFESTS.items():
        response = await v2.put(
            "/v2/acme/app/manifests/bad", content=payload, headers={"Content-Type": OCI_MANIFEST}
        )
        assert response.status_code == 400, (name, response.text)
        oci_error(response, 400, "MANIFEST_INVALID")


async def test_pathological_json_bodies_on_the_api(world: World) -> None:
    headers = {**world.auth("admin"), "Content-Type": "application/json"}
    deep = b"[" * 50_000 + b"]" * 50_000
    bignum = b'{"repository": "x", "namespace": "acme", "description": 1' + b"0" * 5000 + b"}"
    targets = [
        ("POST", "/api/v1/repository"),
        ("POST", "/api/v1/organization/"),
        ("PUT", "/api/v1/user/robots/deep"),
        ("POST", "/api/v1/repository/acme/app/mirror"),
        ("PUT", "/api/v1/repository/acme/app/mirror"),
        ("POST", "/api/v1/signin"),
    ]
    for method, path in targets:
        for body in (deep, bignum, b"\xff" * 10, b'{"a": "\\u0000"}'):
            response = await world.client.request(method, path, content=body, headers=headers)
            assert 400 <= response.status_code < 500, (path, body[:20], response.text)
            assert error_shape_problems(path, response.status_code, response.content) is None


FORGED_POSITIONS = [10**30, -(10**30), 1e400, 1.5, "7", None, [1], {"x": 1}, True]


async def test_forged_page_tokens_are_refused(world: World) -> None:
    auth = world.auth("admin")
    for position in FORGED_POSITIONS:
        for path, key in [
            ("/api/v1/repository", "after"),
            ("/api/v1/repository/acme/app/logs", "before"),
            ("/api/v1/organization/acme/logs", "before"),
        ]:
            raw = json.dumps({key: position}).replace("Infinity", "1e400").encode()
            token = base64.urlsafe_b64encode(raw).decode()
            response = await world.client.get(path, params={"next_page": token}, headers=auth)
            assert response.status_code == 400, (path, position, response.text)
            assert response.json()["detail"] == "Invalid next_page token"
    deep = base64.urlsafe_b64encode(b"[" * 5000).decode()
    response = await world.client.get(
        "/api/v1/repository", params={"next_page": deep}, headers=auth
    )
    assert response.status_code == 400


async def test_api_bodies_over_the_limit_are_refused_unread(world: World) -> None:
    """API_MAX_BODY_SIZE (1 MiB by default) outside /v2/: declared, or streamed without a
    length; a body under the limit reaches the handler as before."""
    auth = ("authorization", world.auth("admin")["Authorization"])
    huge = ("content-length", str(10**12))
    for method, path in [("POST", "/api/v1/repository"), ("POST", "/api/v1/signin")]:
        response = await send(world.app, method, path, [auth, huge], b"")
        assert response.status == 413, (path, response.text)
        assert response.json()["error_type"] == "request_too_large"
        assert error_shape_problems(path, response.status, response.body) is None

    async def stream(total: int) -> AsyncIterator[bytes]:
        """A valid request, padded with whitespace to ``total`` bytes, sent without a length."""
        yield b'{"namespace": "acme", "repository": "big", "visibility": "private", '
        yield b'"description": "d"'
        for _ in range(total // 65536):
            yield b" " * 65536
        yield b"}"

    headers = {**world.auth("admin"), "Content-Type": "application/json"}
    over = await world.client.post("/api/v1/repository", content=stream(2 * MiB), headers=headers)
    assert over.status_code == 413, over.text
    assert "larger than 1048576 bytes" in over.json()["error_message"]
    assert (
        await world.client.get("/api/v1/repository/acme/big", headers=headers)
    ).status_code == 404
    under = await world.client.post("/api/v1/repository", content=stream(MiB // 2), headers=headers)
    assert under.status_code == 201, under.text
