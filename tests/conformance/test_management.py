"""OCI Distribution Spec v1.1 conformance: content management (end-9, end-10)."""

from __future__ import annotations

import httpx
import pytest

from tests.conformance.spec import ABSENT_DIGEST, Content, assert_error, index, oci_image, push
from tests.conformance.spec import upload as upload_blob
from tests.support.images import sha256

pytestmark = pytest.mark.anyio

REPO = "conformance/manage"


@pytest.fixture
async def image(client: httpx.AsyncClient) -> Content:
    content = oci_image()
    await push(client, REPO, content, "v1")
    response = await client.put(
        f"/v2/{REPO}/manifests/stable",
        content=content.manifest,
        headers={"Content-Type": content.media_type},
    )
    assert response.status_code == 201
    return content


async def _status(client: httpx.AsyncClient, ref: str) -> int:
    return (await client.get(f"/v2/{REPO}/manifests/{ref}")).status_code


async def _tags(client: httpx.AsyncClient) -> list[str]:
    response = await client.get(f"/v2/{REPO}/tags/list")
    tags: list[str] = response.json()["tags"]
    return tags


# --- manifests and tags -------------------------------------------------------------------------


async def test_delete_manifest_by_digest(client: httpx.AsyncClient, image: Content) -> None:
    response = await client.delete(f"/v2/{REPO}/manifests/{image.digest}")
    assert response.status_code == 202
    assert_error(await client.get(f"/v2/{REPO}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")
    assert (await client.head(f"/v2/{REPO}/manifests/{image.digest}")).status_code == 404
    # Every tag that pointed at it is gone as well.
    assert_error(await client.get(f"/v2/{REPO}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    assert await _status(client, "stable") == 404
    assert await _tags(client) == []
    again = await client.delete(f"/v2/{REPO}/manifests/{image.digest}")
    assert_error(again, 404, "MANIFEST_UNKNOWN")


async def test_deleted_manifest_can_be_pushed_again(
    client: httpx.AsyncClient, image: Content
) -> None:
    assert (await client.delete(f"/v2/{REPO}/manifests/{image.digest}")).status_code == 202
    await push(client, REPO, image, "v2")
    assert await _status(client, "v2") == 200
    assert await _status(client, "v1") == 404


async def test_delete_tag_deletes_only_the_tag(client: httpx.AsyncClient, image: Content) -> None:
    response = await client.delete(f"/v2/{REPO}/manifests/v1")
    assert response.status_code == 202
    assert_error(await client.get(f"/v2/{REPO}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    assert await _status(client, "stable") == 200
    assert await _status(client, image.digest) == 200
    assert await _tags(client) == ["stable"]
    again = await client.delete(f"/v2/{REPO}/manifests/v1")
    assert_error(again, 404, "MANIFEST_UNKNOWN")


async def test_deleting_the_last_tag_keeps_the_manifest(
    client: httpx.AsyncClient, image: Content
) -> None:
    for tag in ("v1", "stable"):
        assert (await client.delete(f"/v2/{REPO}/manifests/{tag}")).status_code == 202
    assert await _tags(client) == []
    assert await _status(client, image.digest) == 200


@pytest.mark.parametrize("ref", ["missing", ABSENT_DIGEST])
async def test_delete_unknown_manifest_is_404(
    client: httpx.AsyncClient, image: Content, ref: str
) -> None:
    assert_error(await client.delete(f"/v2/{REPO}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")


async def test_delete_in_unknown_repository_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"/v2/conformance/nothing/manifests/{ABSENT_DIGEST}")
    assert_error(response, 404, "NAME_UNKNOWN")
    blob = await client.delete(f"/v2/conformance/nothing/blobs/{ABSENT_DIGEST}")
    assert_error(blob, 404, "NAME_UNKNOWN")


async def test_delete_with_invalid_reference_is_400(
    client: httpx.AsyncClient, image: Content
) -> None:
    assert_error(await client.delete(f"/v2/{REPO}/manifests/sha256:zz"), 400, "DIGEST_INVALID")
    assert_error(await client.delete(f"/v2/{REPO}/blobs/sha256:zz"), 400, "DIGEST_INVALID")
    assert_error(await client.delete(f"/v2/{REPO}/manifests/-bad-tag"), 400)


async def test_index_child_cannot_be_deleted_before_the_index(client: httpx.AsyncClient) -> None:
    """Moorage rule: a manifest listed by an index in the same repository is refused (409)."""
    child = oci_image()
    await push(client, REPO, child, child.digest)
    parent = index([child])
    await push(client, REPO, parent, "multi")
    refused = await client.delete(f"/v2/{REPO}/manifests/{child.digest}")
    assert_error(refused, 409, "DENIED")
    assert await _status(client, child.digest) == 200
    assert (await client.delete(f"/v2/{REPO}/manifests/{parent.digest}")).status_code == 202
    assert (await client.delete(f"/v2/{REPO}/manifests/{child.digest}")).status_code == 202
    assert await _status(client, child.digest) == 404


async def test_the_same_manifest_in_another_repository_is_independent(
    client: httpx.AsyncClient, image: Content
) -> None:
    await push(client, "conformance/copy", image, "v1")
    assert (await client.delete(f"/v2/{REPO}/manifests/{image.digest}")).status_code == 202
    kept = await client.get(f"/v2/conformance/copy/manifests/{image.digest}")
    assert kept.status_code == 200


# --- blobs --------------------------------------------------------------------------------------


async def test_delete_blob(client: httpx.AsyncClient) -> None:
    digest = await upload_blob(client, REPO, b"delete me")
    response = await client.delete(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 202
    assert (await client.head(f"/v2/{REPO}/blobs/{digest}")).status_code == 404
    assert_error(await client.get(f"/v2/{REPO}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_error(await client.delete(f"/v2/{REPO}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


async def test_delete_unknown_blob_is_404(client: httpx.AsyncClient) -> None:
    await upload_blob(client, REPO, b"the repository exists")
    response = await client.delete(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}")
    assert_error(response, 404, "BLOB_UNKNOWN")


async def test_deleted_blob_stays_in_other_repositories(client: httpx.AsyncClient) -> None:
    digest = await upload_blob(client, REPO, b"shared")
    await upload_blob(client, "conformance/sharer", b"shared")
    assert (await client.delete(f"/v2/{REPO}/blobs/{digest}")).status_code == 202
    kept = await client.get(f"/v2/conformance/sharer/blobs/{digest}")
    assert kept.status_code == 200
    assert kept.content == b"shared"


async def test_blob_referenced_by_a_manifest_is_not_deleted(
    client: httpx.AsyncClient, image: Content
) -> None:
    """Moorage rule: delete the manifests that use a blob first (405 UNSUPPORTED until then)."""
    layer = sha256(image.blobs[1])
    refused = await client.delete(f"/v2/{REPO}/blobs/{layer}")
    assert_error(refused, 405, "UNSUPPORTED")
    assert (await client.head(f"/v2/{REPO}/blobs/{layer}")).status_code == 200
    assert (await client.delete(f"/v2/{REPO}/manifests/{image.digest}")).status_code == 202
    assert (await client.delete(f"/v2/{REPO}/blobs/{layer}")).status_code == 202
    assert (await client.head(f"/v2/{REPO}/blobs/{layer}")).status_code == 404
