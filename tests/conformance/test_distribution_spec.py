"""OCI Distribution Spec v1.1 conformance: the base endpoint, routing, the error envelope, pull.

Push, content discovery and content management live in the sibling test_*.py modules.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conformance.spec import (
    ABSENT_DIGEST,
    API_VERSION_HEADER,
    Content,
    assert_error,
    oci_image,
    push,
    sha512,
    upload,
)

pytestmark = pytest.mark.anyio

REPO = "conformance/pull"


# --- end-1: GET /v2/ ------------------------------------------------------------------------------


async def test_base_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/")
    assert response.status_code == 200
    assert response.headers[API_VERSION_HEADER] == "registry/2.0"


# --- routing: unknown routes and wrong methods --------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v2/acme/app/nonsense",
        "/v2/acme/app/blobs",
        "/v2/acme/app/manifests/",
        "/v2/acme/app/tags",
        "/v2/acme/app/manifests/latest/extra",
    ],
)
async def test_unknown_route_is_404_with_envelope(client: httpx.AsyncClient, path: str) -> None:
    assert_error(await client.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v2/"),
        ("DELETE", "/v2/_catalog"),
        ("POST", "/v2/acme/app/tags/list"),
        ("PATCH", "/v2/acme/app/manifests/latest"),
        ("POST", "/v2/acme/app/manifests/latest"),
        ("PUT", f"/v2/acme/app/blobs/{ABSENT_DIGEST}"),
        ("POST", f"/v2/acme/app/referrers/{ABSENT_DIGEST}"),
    ],
)
async def test_wrong_method_is_405_unsupported(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    assert_error(await client.request(method, path), 405, "UNSUPPORTED")


# --- end-3: GET/HEAD manifests ------------------------------------------------------------------


@pytest.fixture
async def image(client: httpx.AsyncClient) -> Content:
    content = oci_image()
    await push(client, REPO, content, "v1")
    return content


def _assert_manifest_headers(response: httpx.Response, image: Content) -> None:
    assert response.headers["Content-Type"] == image.media_type
    assert response.headers["Docker-Content-Digest"] == image.digest
    assert response.headers["Content-Length"] == str(len(image.manifest))


@pytest.mark.parametrize("by", ["tag", "digest"])
async def test_get_manifest(client: httpx.AsyncClient, image: Content, by: str) -> None:
    ref = "v1" if by == "tag" else image.digest
    response = await client.get(f"/v2/{REPO}/manifests/{ref}", headers={"Accept": image.media_type})
    assert response.status_code == 200
    assert response.content == image.manifest
    _assert_manifest_headers(response, image)


@pytest.mark.parametrize("by", ["tag", "digest"])
async def test_head_manifest(client: httpx.AsyncClient, image: Content, by: str) -> None:
    ref = "v1" if by == "tag" else image.digest
    response = await client.head(
        f"/v2/{REPO}/manifests/{ref}", headers={"Accept": image.media_type}
    )
    assert response.status_code == 200
    assert response.content == b""
    _assert_manifest_headers(response, image)


async def test_get_manifest_without_accept(client: httpx.AsyncClient, image: Content) -> None:
    response = await client.get(f"/v2/{REPO}/manifests/v1")
    assert response.status_code == 200
    assert response.content == image.manifest


async def test_manifest_by_tag_honours_accept(client: httpx.AsyncClient, image: Content) -> None:
    """A client that cannot take the manifest's media type gets 404 by tag (as Distribution
    does); by digest the client asked for exactly those bytes and gets them."""
    docker_only = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    by_tag = await client.get(f"/v2/{REPO}/manifests/v1", headers=docker_only)
    assert_error(by_tag, 404, "MANIFEST_UNKNOWN")
    by_digest = await client.get(f"/v2/{REPO}/manifests/{image.digest}", headers=docker_only)
    assert by_digest.status_code == 200
    several = {
        "Accept": f"application/vnd.docker.distribution.manifest.v2+json, {image.media_type}"
    }
    assert (await client.get(f"/v2/{REPO}/manifests/v1", headers=several)).status_code == 200


@pytest.mark.parametrize("ref", ["missing", ABSENT_DIGEST])
async def test_unknown_manifest_is_404(client: httpx.AsyncClient, image: Content, ref: str) -> None:
    assert_error(await client.get(f"/v2/{REPO}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
    head = await client.head(f"/v2/{REPO}/manifests/{ref}")
    assert head.status_code == 404


async def test_manifest_of_another_repository_is_unknown(
    client: httpx.AsyncClient, image: Content
) -> None:
    await upload(client, "conformance/other", b"makes the repository exist")
    response = await client.get(f"/v2/conformance/other/manifests/{image.digest}")
    assert_error(response, 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize(
    "path",
    [
        "manifests/latest",
        f"manifests/{ABSENT_DIGEST}",
        f"blobs/{ABSENT_DIGEST}",
        "tags/list",
    ],
)
async def test_unknown_repository_is_404_name_unknown(client: httpx.AsyncClient, path: str) -> None:
    assert_error(await client.get(f"/v2/conformance/nothing-here/{path}"), 404, "NAME_UNKNOWN")


@pytest.mark.parametrize(
    "name",
    [
        "Upper/Case",
        "acme/trailing-",
        "acme/-leading",
        "acme/double..dot",
        "acme/" + "x" * 300,
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "manifests/latest"),
        ("HEAD", "manifests/latest"),
        ("PUT", "manifests/latest"),
        ("GET", f"blobs/{ABSENT_DIGEST}"),
        ("GET", "tags/list"),
        ("POST", "blobs/uploads/"),
    ],
)
async def test_invalid_name_is_400_name_invalid(
    client: httpx.AsyncClient, name: str, method: str, path: str
) -> None:
    response = await client.request(method, f"/v2/{name}/{path}", content=b"{}")
    if method == "HEAD":
        assert response.status_code == 400
    else:
        assert_error(response, 400, "NAME_INVALID")


async def test_name_without_namespace_is_refused(client: httpx.AsyncClient) -> None:
    """Moorage rule (as Quay): repositories are ``namespace/name``, so a one-component name that
    the spec's grammar would allow is NAME_INVALID here."""
    assert_error(await client.post("/v2/solo/blobs/uploads/"), 400, "NAME_INVALID")


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "sha256:" + "Z" * 64, "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:"],
)
@pytest.mark.parametrize("kind", ["manifests", "blobs"])
async def test_invalid_digest_is_400_digest_invalid(
    client: httpx.AsyncClient, image: Content, kind: str, digest: str
) -> None:
    assert_error(await client.get(f"/v2/{REPO}/{kind}/{digest}"), 400, "DIGEST_INVALID")


# --- end-2: GET/HEAD blobs ----------------------------------------------------------------------

BLOB = bytes(range(256)) * 4  # 1 KiB with distinct bytes, so every slice is recognisable


@pytest.fixture
async def blob(client: httpx.AsyncClient) -> str:
    return await upload(client, REPO, BLOB)


async def test_get_blob(client: httpx.AsyncClient, blob: str) -> None:
    response = await client.get(f"/v2/{REPO}/blobs/{blob}")
    assert response.status_code == 200
    assert response.content == BLOB
    assert response.headers["Content-Length"] == str(len(BLOB))
    assert response.headers["Docker-Content-Digest"] == blob


async def test_head_blob(client: httpx.AsyncClient, blob: str) -> None:
    response = await client.head(f"/v2/{REPO}/blobs/{blob}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(len(BLOB))
    assert response.headers["Docker-Content-Digest"] == blob


async def test_blob_sha512(client: httpx.AsyncClient) -> None:
    data = b"a blob addressed by sha512"
    response = await client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": sha512(data)}, content=data
    )
    assert response.status_code == 201, response.text
    got = await client.get(f"/v2/{REPO}/blobs/{sha512(data)}")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["Docker-Content-Digest"] == sha512(data)


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-99", 10, 99),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-24", 1000, 1023),
        ("bytes=1000-5000", 1000, 1023),
    ],
)
async def test_blob_range_is_206(
    client: httpx.AsyncClient, blob: str, header: str, start: int, end: int
) -> None:
    response = await client.get(f"/v2/{REPO}/blobs/{blob}", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == BLOB[start : end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(BLOB)}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Docker-Content-Digest"] == blob


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
async def test_unsatisfiable_range_is_416(
    client: httpx.AsyncClient, blob: str, header: str
) -> None:
    response = await client.get(f"/v2/{REPO}/blobs/{blob}", headers={"Range": header})
    assert_error(response, 416)
    assert response.headers["Content-Range"] == f"bytes */{len(BLOB)}"


@pytest.mark.parametrize("header", ["items=0-1", "bytes=5-2", "bytes=0-1,4-5", "bytes=x-y"])
async def test_unusable_range_header_is_ignored(
    client: httpx.AsyncClient, blob: str, header: str
) -> None:
    """RFC 9110 14.2: a Range header the server cannot use is ignored; the whole blob is sent."""
    response = await client.get(f"/v2/{REPO}/blobs/{blob}", headers={"Range": header})
    assert response.status_code == 200
    assert response.content == BLOB


async def test_range_on_an_empty_blob_sends_it_whole(client: httpx.AsyncClient) -> None:
    empty = await upload(client, REPO, b"")
    response = await client.get(f"/v2/{REPO}/blobs/{empty}", headers={"Range": "bytes=0-"})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"


async def test_unknown_blob_is_404(client: httpx.AsyncClient, blob: str) -> None:
    assert_error(await client.get(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}"), 404, "BLOB_UNKNOWN")
    head = await client.head(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}")
    assert head.status_code == 404
    assert head.content == b""


async def test_blob_of_another_repository_is_unknown(client: httpx.AsyncClient, blob: str) -> None:
    await upload(client, "conformance/elsewhere", b"other")
    response = await client.get(f"/v2/conformance/elsewhere/blobs/{blob}")
    assert_error(response, 404, "BLOB_UNKNOWN")


async def test_manifest_is_not_a_blob(client: httpx.AsyncClient, image: Content) -> None:
    response = await client.get(f"/v2/{REPO}/blobs/{image.digest}")
    assert_error(response, 404, "BLOB_UNKNOWN")
