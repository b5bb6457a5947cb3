"""Helpers shared by the conformance tests: spec constants, assertions and content builders."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.images import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, sha256

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"

API_VERSION_HEADER = "Docker-Distribution-API-Version"

# The only error codes the specification allows (error codes table, code-1 .. code-14).
SPEC_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)

RANGE_RE = re.compile(r"^0-[0-9]+$")
ABSENT_DIGEST = "sha256:" + "0" * 64


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is ``status`` with the spec's JSON error envelope; returns the first error."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    assert response.headers[API_VERSION_HEADER] == "registry/2.0"
    body = response.json()
    assert set(body) == {"errors"}, body
    assert isinstance(body["errors"], list)
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"code", "message", "detail"}, error
        assert error["code"] in SPEC_ERROR_CODES, error
        assert isinstance(error["message"], str)
    first: dict[str, Any] = body["errors"][0]
    if code is not None:
        assert first["code"] == code, body
    return first


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


@dataclass
class Content:
    """A manifest (or index) and the blobs it needs, ready to push."""

    manifest: bytes
    media_type: str
    blobs: tuple[bytes, ...] = ()

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return descriptor(self.media_type, self.manifest, **extra)


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def oci_image(layer_size: int = 512, **fields: Any) -> Content:
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": os.urandom(4).hex()})
    layer = os.urandom(layer_size)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config.encode()),
        "layers": [descriptor(OCI_LAYER, layer)],
        **fields,
    }
    return Content(_encode(doc), OCI_MANIFEST, (config.encode(), layer))


def docker_image(layer_size: int = 512) -> Content:
    config = json.dumps({"architecture": "arm64", "os": "linux", "n": os.urandom(4).hex()})
    layer = os.urandom(layer_size)
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config.encode()),
        "layers": [descriptor(DOCKER_LAYER, layer)],
    }
    return Content(_encode(doc), DOCKER_MANIFEST, (config.encode(), layer))


def artifact(
    subject: Content | None,
    artifact_type: str | None,
    annotations: dict[str, str] | None = None,
    config_type: str = EMPTY_CONFIG,
) -> Content:
    """An OCI 1.1 artifact: an image manifest with the empty config and one small layer."""
    layer = os.urandom(64)
    config = (
        EMPTY_JSON
        if config_type == EMPTY_CONFIG
        else b'{"kind":"' + os.urandom(4).hex().encode() + b'"}'
    )
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type, config),
        "layers": [descriptor("application/octet-stream", layer)],
    }
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations:
        doc["annotations"] = annotations
    return Content(_encode(doc), OCI_MANIFEST, (config, layer))


def index(
    children: list[Content],
    media_type: str = OCI_INDEX,
    **fields: Any,
) -> Content:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            child.descriptor(platform={"architecture": f"arch{i}", "os": "linux"})
            for i, child in enumerate(children)
        ],
        **fields,
    }
    return Content(_encode(doc), media_type)


async def upload(client: httpx.AsyncClient, repo: str, data: bytes) -> str:
    """Push one blob with POST then PUT (the upload flow every registry must support)."""
    start = await client.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    done = await client.put(
        start.headers["Location"],
        params={"digest": sha256(data)},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return sha256(data)


async def push(client: httpx.AsyncClient, repo: str, content: Content, ref: str) -> httpx.Response:
    """Push the blobs of ``content``, then the manifest under ``ref``; expects 201."""
    for blob in content.blobs:
        await upload(client, repo, blob)
    response = await put_manifest(client, repo, content, ref)
    assert response.status_code == 201, response.text
    return response


async def put_manifest(
    client: httpx.AsyncClient, repo: str, content: Content, ref: str
) -> httpx.Response:
    return await client.put(
        f"/v2/{repo}/manifests/{ref}",
        content=content.manifest,
        headers={"Content-Type": content.media_type},
    )
