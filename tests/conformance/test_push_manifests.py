"""OCI Distribution Spec v1.1 conformance: pushing manifests (end-7)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conformance.spec import (
    DOCKER_MANIFEST_LIST,
    Content,
    artifact,
    assert_error,
    docker_image,
    index,
    oci_image,
    push,
    put_manifest,
    sha512,
    upload,
)
from tests.support.images import OCI_INDEX, OCI_MANIFEST, sha256

pytestmark = pytest.mark.anyio

REPO = "conformance/manifests"


async def _assert_pull(client: httpx.AsyncClient, ref: str, content: Content) -> None:
    response = await client.get(f"/v2/{REPO}/manifests/{ref}")
    assert response.status_code == 200, response.text
    assert response.content == content.manifest
    assert response.headers["Content-Type"] == content.media_type
    assert response.headers["Docker-Content-Digest"] == content.digest


async def test_put_by_tag(client: httpx.AsyncClient) -> None:
    image = oci_image()
    response = await push(client, REPO, image, "v1.0")
    assert response.headers["Location"] == f"/v2/{REPO}/manifests/{image.digest}"
    assert response.headers["Docker-Content-Digest"] == image.digest
    assert "OCI-Subject" not in response.headers
    await _assert_pull(client, "v1.0", image)
    await _assert_pull(client, image.digest, image)


async def test_put_by_digest(client: httpx.AsyncClient) -> None:
    image = oci_image()
    response = await push(client, REPO, image, image.digest)
    assert response.headers["Location"] == f"/v2/{REPO}/manifests/{image.digest}"
    assert response.headers["Docker-Content-Digest"] == image.digest
    await _assert_pull(client, image.digest, image)
    tags = await client.get(f"/v2/{REPO}/tags/list")
    assert tags.json()["tags"] == []


async def test_put_by_sha512_digest(client: httpx.AsyncClient) -> None:
    image = oci_image()
    digest = sha512(image.manifest)
    response = await push(client, REPO, image, digest)
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Location"] == f"/v2/{REPO}/manifests/{digest}"
    got = await client.get(f"/v2/{REPO}/manifests/{digest}")
    assert got.status_code == 200, got.text
    assert got.content == image.manifest
    assert got.headers["Docker-Content-Digest"] == digest


async def test_put_is_stored_byte_for_byte(client: httpx.AsyncClient) -> None:
    image = oci_image()
    for blob in image.blobs:
        await upload(client, REPO, blob)
    odd = Content(b"  \n" + image.manifest.replace(b"\n", b"\r\n") + b"\n\n", OCI_MANIFEST)
    response = await push(client, REPO, odd, "odd")
    assert response.headers["Docker-Content-Digest"] == sha256(odd.manifest)
    await _assert_pull(client, "odd", odd)


async def test_moving_a_tag(client: httpx.AsyncClient) -> None:
    first, second = oci_image(), oci_image()
    await push(client, REPO, first, "latest")
    await push(client, REPO, second, "latest")
    await _assert_pull(client, "latest", second)
    await _assert_pull(client, first.digest, first)


async def test_wrong_digest_in_reference_is_400(client: httpx.AsyncClient) -> None:
    image = oci_image()
    for blob in image.blobs:
        await upload(client, REPO, blob)
    other = sha256(b"not this manifest")
    assert_error(await put_manifest(client, REPO, image, other), 400, "DIGEST_INVALID")
    assert (await client.get(f"/v2/{REPO}/manifests/{other}")).status_code == 404
    assert (await client.get(f"/v2/{REPO}/manifests/{image.digest}")).status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[1, 2, 3]",
        b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}',
        b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'"}',
        b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "config": {}, '
        b'"layers": []}',
    ],
)
async def test_invalid_manifest_is_400(client: httpx.AsyncClient, payload: bytes) -> None:
    response = await client.put(
        f"/v2/{REPO}/manifests/bad", content=payload, headers={"Content-Type": OCI_MANIFEST}
    )
    assert_error(response, 400, "MANIFEST_INVALID")


async def test_media_type_must_match_content_type(client: httpx.AsyncClient) -> None:
    image = oci_image()
    for blob in image.blobs:
        await upload(client, REPO, blob)
    response = await client.put(
        f"/v2/{REPO}/manifests/v1", content=image.manifest, headers={"Content-Type": OCI_INDEX}
    )
    assert_error(response, 400, "MANIFEST_INVALID")


async def test_missing_blob_is_400_manifest_blob_unknown(client: httpx.AsyncClient) -> None:
    image = oci_image()
    await upload(client, REPO, image.blobs[0])  # the config, not the layer
    response = await put_manifest(client, REPO, image, "v1")
    error = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert error["detail"] == {"digest": sha256(image.blobs[1])}
    assert (await client.get(f"/v2/{REPO}/manifests/v1")).status_code == 404


async def test_blob_of_another_repository_does_not_count(client: httpx.AsyncClient) -> None:
    image = oci_image()
    for blob in image.blobs:
        await upload(client, "conformance/elsewhere", blob)
    response = await put_manifest(client, REPO, image, "v1")
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("tag", ["-dash", ".dot", "a" * 129, "with space", "colon:tag"])
async def test_invalid_tag_is_400(client: httpx.AsyncClient, tag: str) -> None:
    image = oci_image()
    for blob in image.blobs:
        await upload(client, REPO, blob)
    response = await put_manifest(client, REPO, image, tag)
    assert_error(response, 400)


@pytest.mark.parametrize("tag", ["_underscore", "A", "v1.0.0-rc.1_build", "t" * 128, "0"])
async def test_valid_tags(client: httpx.AsyncClient, tag: str) -> None:
    image = oci_image()
    await push(client, REPO, image, tag)
    await _assert_pull(client, tag, image)


async def test_manifest_too_large_is_413(client: httpx.AsyncClient) -> None:
    image = oci_image()
    for blob in image.blobs:
        await upload(client, REPO, blob)
    doc = json.loads(image.manifest)
    doc["annotations"] = {"padding": "x" * (4 * 1024 * 1024)}
    response = await client.put(
        f"/v2/{REPO}/manifests/big",
        content=json.dumps(doc).encode(),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_error(response, 413, "SIZE_INVALID")


# --- Docker and OCI media types -----------------------------------------------------------------


async def test_docker_schema2_manifest(client: httpx.AsyncClient) -> None:
    image = docker_image()
    await push(client, REPO, image, "docker")
    await _assert_pull(client, "docker", image)


async def test_docker_manifest_list(client: httpx.AsyncClient) -> None:
    children = [docker_image(), docker_image()]
    for child in children:
        await push(client, REPO, child, child.digest)
    manifest_list = index(children, DOCKER_MANIFEST_LIST)
    response = await push(client, REPO, manifest_list, "multi")
    assert response.headers["Docker-Content-Digest"] == manifest_list.digest
    await _assert_pull(client, "multi", manifest_list)


async def test_oci_index(client: httpx.AsyncClient) -> None:
    children = [oci_image(), docker_image()]
    for child in children:
        await push(client, REPO, child, child.digest)
    oci_index = index(children)
    await push(client, REPO, oci_index, "index")
    await _assert_pull(client, "index", oci_index)
    await _assert_pull(client, children[1].digest, children[1])


async def test_nested_index(client: httpx.AsyncClient) -> None:
    image = oci_image()
    await push(client, REPO, image, image.digest)
    inner = index([image])
    await push(client, REPO, inner, inner.digest)
    outer = index([inner])
    await push(client, REPO, outer, "nested")
    await _assert_pull(client, "nested", outer)


async def test_manifest_without_media_type_field(client: httpx.AsyncClient) -> None:
    """mediaType is only a SHOULD: the Content-Type of the PUT says what the manifest is."""
    image = oci_image()
    doc = json.loads(image.manifest)
    del doc["mediaType"]
    doc["x-unknown-field"] = {"kept": True}
    bare = Content(json.dumps(doc).encode(), OCI_MANIFEST, image.blobs)
    await push(client, REPO, bare, "bare")
    await _assert_pull(client, "bare", bare)


async def test_index_with_unknown_child_is_400(client: httpx.AsyncClient) -> None:
    known, unknown = oci_image(), oci_image()
    await push(client, REPO, known, known.digest)
    response = await put_manifest(client, REPO, index([known, unknown]), "index")
    error = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert error["detail"] == {"digest": unknown.digest}


# --- subject / OCI-Subject ----------------------------------------------------------------------


async def test_artifact_with_subject_returns_oci_subject(client: httpx.AsyncClient) -> None:
    subject = oci_image()
    await push(client, REPO, subject, "v1")
    sbom = artifact(subject, "application/vnd.example.sbom.v1", {"org.example": "yes"})
    response = await push(client, REPO, sbom, sbom.digest)
    assert response.headers["OCI-Subject"] == subject.digest
    assert response.headers["Docker-Content-Digest"] == sbom.digest
    await _assert_pull(client, sbom.digest, sbom)


async def test_subject_may_be_pushed_after_its_referrer(client: httpx.AsyncClient) -> None:
    subject = oci_image()
    signature = artifact(subject, "application/vnd.example.signature.v1")
    response = await push(client, REPO, signature, signature.digest)
    assert response.headers["OCI-Subject"] == subject.digest
    await push(client, REPO, subject, "v1")
    referrers = await client.get(f"/v2/{REPO}/referrers/{subject.digest}")
    assert [d["digest"] for d in referrers.json()["manifests"]] == [signature.digest]


async def test_index_with_subject_returns_oci_subject(client: httpx.AsyncClient) -> None:
    subject, child = oci_image(), oci_image()
    await push(client, REPO, subject, "v1")
    await push(client, REPO, child, child.digest)
    with_subject = index([child], subject=subject.descriptor(), artifactType="application/x.idx")
    response = await push(client, REPO, with_subject, with_subject.digest)
    assert response.headers["OCI-Subject"] == subject.digest
