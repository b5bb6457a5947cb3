"""OCI Distribution Spec v1.1 conformance: pushing blobs (end-4a, end-4b, end-5, end-6, end-11,
end-13, end-14)."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.conformance.spec import ABSENT_DIGEST, RANGE_RE, assert_error, sha512, upload
from tests.support.images import sha256

pytestmark = pytest.mark.anyio

REPO = "conformance/push"
DATA = os.urandom(3000)


async def _start(client: httpx.AsyncClient, repo: str = REPO) -> str:
    response = await client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    assert location.startswith(f"/v2/{repo}/blobs/uploads/")
    return location


async def _assert_pullable(client: httpx.AsyncClient, location: str, data: bytes) -> None:
    got = await client.get(location)
    assert got.status_code == 200, got.text
    assert got.content == data


# --- monolithic ---------------------------------------------------------------------------------


async def test_post_then_put(client: httpx.AsyncClient) -> None:
    start = await client.post(f"/v2/{REPO}/blobs/uploads/")
    assert start.status_code == 202
    assert start.headers["Location"]
    done = await client.put(
        start.headers["Location"],
        params={"digest": sha256(DATA)},
        content=DATA,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    assert done.headers["Location"] == f"/v2/{REPO}/blobs/{sha256(DATA)}"
    assert done.headers["Docker-Content-Digest"] == sha256(DATA)
    await _assert_pullable(client, done.headers["Location"], DATA)


async def test_single_post(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/v2/{REPO}/blobs/uploads/",
        params={"digest": sha256(DATA)},
        content=DATA,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v2/{REPO}/blobs/{sha256(DATA)}"
    await _assert_pullable(client, response.headers["Location"], DATA)


async def test_empty_blob(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    done = await client.put(location, params={"digest": sha256(b"")})
    assert done.status_code == 201, done.text
    head = await client.head(done.headers["Location"])
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "0"


async def test_pushing_an_existing_blob_again(client: httpx.AsyncClient) -> None:
    await upload(client, REPO, DATA)
    await upload(client, REPO, DATA)
    await upload(client, "conformance/second", DATA)
    await _assert_pullable(client, f"/v2/conformance/second/blobs/{sha256(DATA)}", DATA)


# --- chunked ------------------------------------------------------------------------------------


async def test_chunked_upload(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    for start, end in ((0, 999), (1000, 1999)):
        response = await client.patch(
            location,
            content=DATA[start : end + 1],
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end}",
            },
        )
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{end}"
        location = response.headers["Location"]
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-1999"
    assert status.headers["Location"]
    # The last chunk travels with the closing PUT.
    done = await client.put(
        status.headers["Location"],
        params={"digest": sha256(DATA)},
        content=DATA[2000:],
        headers={"Content-Type": "application/octet-stream", "Content-Range": "2000-2999"},
    )
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == sha256(DATA)
    await _assert_pullable(client, done.headers["Location"], DATA)


async def test_streamed_patch_without_content_range(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    first = await client.patch(location, content=DATA[:1500])
    assert first.status_code == 202
    second = await client.patch(first.headers["Location"], content=DATA[1500:])
    assert second.status_code == 202
    assert second.headers["Range"] == f"0-{len(DATA) - 1}"
    done = await client.put(second.headers["Location"], params={"digest": sha256(DATA)})
    assert done.status_code == 201, done.text
    await _assert_pullable(client, done.headers["Location"], DATA)


async def test_sha512_chunked_upload(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    patch = await client.patch(location, content=DATA, headers={"Content-Range": "0-2999"})
    assert patch.status_code == 202
    done = await client.put(patch.headers["Location"], params={"digest": sha512(DATA)})
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == sha512(DATA)
    await _assert_pullable(client, done.headers["Location"], DATA)


@pytest.mark.parametrize(
    "bad_range",
    ["2000-2999", "500-1499", "0-999"],
    ids=["skips-ahead", "overlaps", "repeats-first"],
)
async def test_out_of_order_chunk_is_416(client: httpx.AsyncClient, bad_range: str) -> None:
    location = await _start(client)
    first = await client.patch(location, content=DATA[:1000], headers={"Content-Range": "0-999"})
    assert first.status_code == 202
    start, end = (int(x) for x in bad_range.split("-"))
    wrong = await client.patch(
        location, content=DATA[start : end + 1], headers={"Content-Range": bad_range}
    )
    assert_error(wrong, 416, "BLOB_UPLOAD_INVALID")
    assert wrong.headers["Range"] == "0-999"
    assert wrong.headers["Location"] == location
    # The session is intact: its status still says 1000 bytes, and the right chunk is accepted.
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-999"
    right = await client.patch(
        location, content=DATA[1000:], headers={"Content-Range": "1000-2999"}
    )
    assert right.status_code == 202
    done = await client.put(location, params={"digest": sha256(DATA)})
    assert done.status_code == 201, done.text


async def test_out_of_order_last_chunk_in_put_is_416(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    await client.patch(location, content=DATA[:1000], headers={"Content-Range": "0-999"})
    wrong = await client.put(
        location,
        params={"digest": sha256(DATA)},
        content=DATA[2000:],
        headers={"Content-Range": "2000-2999"},
    )
    assert_error(wrong, 416, "BLOB_UPLOAD_INVALID")
    assert wrong.headers["Range"] == "0-999"
    assert wrong.headers["Location"] == location
    done = await client.put(
        location,
        params={"digest": sha256(DATA)},
        content=DATA[1000:],
        headers={"Content-Range": "1000-2999"},
    )
    assert done.status_code == 201, done.text
    await _assert_pullable(client, done.headers["Location"], DATA)


async def test_first_chunk_must_start_at_zero(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    wrong = await client.patch(location, content=DATA[:10], headers={"Content-Range": "5-14"})
    assert_error(wrong, 416)


async def test_content_range_must_match_length(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    wrong = await client.patch(location, content=DATA[:10], headers={"Content-Range": "0-99"})
    assert_error(wrong, 400, "SIZE_INVALID")


@pytest.mark.parametrize("content_range", ["garbage", "10-5", "-5", "a-b"])
async def test_malformed_content_range_is_400(
    client: httpx.AsyncClient, content_range: str
) -> None:
    location = await _start(client)
    wrong = await client.patch(location, content=b"xyz", headers={"Content-Range": content_range})
    assert_error(wrong, 400, "BLOB_UPLOAD_INVALID")


async def test_upload_status(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    fresh = await client.get(location)
    assert fresh.status_code == 204
    assert RANGE_RE.match(fresh.headers["Range"])
    assert fresh.headers["Location"] == location
    await client.patch(location, content=DATA[:10], headers={"Content-Range": "0-9"})
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-9"
    assert status.headers["Location"] == location


# --- cancel and unknown sessions ----------------------------------------------------------------


async def test_cancel_upload(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    await client.patch(location, content=DATA[:10], headers={"Content-Range": "0-9"})
    cancelled = await client.delete(location)
    assert cancelled.status_code == 204
    assert_error(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    patch = await client.patch(location, content=b"x", headers={"Content-Range": "10-10"})
    assert_error(patch, 404, "BLOB_UPLOAD_UNKNOWN")
    put = await client.put(location, params={"digest": sha256(DATA[:10])})
    assert_error(put, 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(await client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize(
    "upload_id", ["0c7d1f0e-5b7a-4d2e-9b7e-2f6f1d3c9a41", "not-an-upload-id", "x" * 300]
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
async def test_unknown_upload_is_404(
    client: httpx.AsyncClient, upload_id: str, method: str
) -> None:
    await _start(client)  # the repository exists
    response = await client.request(
        method,
        f"/v2/{REPO}/blobs/uploads/{upload_id}",
        params={"digest": sha256(b"x")} if method == "PUT" else None,
        content=b"x" if method in {"PATCH", "PUT"} else None,
    )
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_upload_of_another_repository_is_unknown(client: httpx.AsyncClient) -> None:
    location = await _start(client, "conformance/owner")
    await _start(client, "conformance/intruder")
    upload_id = location.rsplit("/", 1)[1]
    response = await client.get(f"/v2/conformance/intruder/blobs/uploads/{upload_id}")
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


# --- digest verification ------------------------------------------------------------------------


async def test_put_without_digest_is_400(client: httpx.AsyncClient) -> None:
    location = await _start(client)
    assert_error(await client.put(location, content=DATA), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", [sha256(b"something else"), "sha256:nothex", "bogus"])
async def test_put_with_wrong_digest_is_400(client: httpx.AsyncClient, digest: str) -> None:
    location = await _start(client)
    response = await client.put(location, params={"digest": digest}, content=DATA)
    assert_error(response, 400, "DIGEST_INVALID")
    assert (await client.head(f"/v2/{REPO}/blobs/{sha256(DATA)}")).status_code == 404


async def test_single_post_with_wrong_digest_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": sha256(b"other")}, content=DATA
    )
    assert_error(response, 400, "DIGEST_INVALID")
    assert (await client.head(f"/v2/{REPO}/blobs/{sha256(b'other')}")).status_code == 404
    assert (await client.head(f"/v2/{REPO}/blobs/{sha256(DATA)}")).status_code == 404


# --- end-11: cross-repository mount -------------------------------------------------------------


async def test_mount_from_another_repository(client: httpx.AsyncClient) -> None:
    digest = await upload(client, "conformance/source", DATA)
    response = await client.post(
        "/v2/conformance/target/blobs/uploads/",
        params={"mount": digest, "from": "conformance/source"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v2/conformance/target/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    await _assert_pullable(client, response.headers["Location"], DATA)


@pytest.mark.parametrize(
    "source",
    ["conformance/source", "conformance/no-such-repository", "Not A Name"],
)
async def test_mount_falls_back_to_an_upload_session(
    client: httpx.AsyncClient, source: str
) -> None:
    """When the blob cannot be mounted, the registry opens an upload session instead (202)."""
    await upload(client, "conformance/source", b"a different blob")
    response = await client.post(
        "/v2/conformance/target/blobs/uploads/",
        params={"mount": sha256(DATA), "from": source},
    )
    assert response.status_code == 202, response.text
    done = await client.put(
        response.headers["Location"], params={"digest": sha256(DATA)}, content=DATA
    )
    assert done.status_code == 201, done.text
    await _assert_pullable(client, done.headers["Location"], DATA)


async def test_mount_without_from_opens_an_upload_session(client: httpx.AsyncClient) -> None:
    """Without ``from`` the registry MAY look for the blob itself; Moorage does not (a blob's
    existence in a repository the caller cannot see must not leak), so it answers 202."""
    digest = await upload(client, "conformance/source", DATA)
    response = await client.post("/v2/conformance/target/blobs/uploads/", params={"mount": digest})
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith("/v2/conformance/target/blobs/uploads/")


async def test_mount_with_invalid_digest_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"mount": "sha256:nope", "from": "conformance/x"}
    )
    assert_error(response, 400, "DIGEST_INVALID")


async def test_unknown_blob_stays_unknown_after_failed_mount(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"mount": ABSENT_DIGEST, "from": "conformance/x"}
    )
    assert response.status_code == 202
    assert (await client.head(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}")).status_code == 404
