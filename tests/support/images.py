"""Generate small random images in memory and push them with plain HTTP (for functional tests)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    config: bytes
    layers: list[bytes]
    manifest: bytes
    media_type: str = OCI_MANIFEST
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> list[bytes]:
        return [self.config, *self.layers]


def make_image(
    layer_sizes: tuple[int, ...] = (1024, 2048),
    architecture: str = "amd64",
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
) -> Image:
    layers = [os.urandom(size) for size in layer_sizes]
    config = json.dumps(
        {"architecture": architecture, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    if subject is not None:
        doc["subject"] = subject
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    return Image(config, layers, json.dumps(doc, indent=2).encode())


def make_index(children: list[tuple[Image, str]]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": len(image.manifest),
                "platform": {"architecture": arch, "os": "linux"},
            }
            for image, arch in children
        ],
    }
    return json.dumps(doc).encode()


async def push_blob(client: httpx.AsyncClient, repo: str, data: bytes) -> str:
    digest = sha256(data)
    response = await client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data
    )
    assert response.status_code == 201, response.text
    return digest


async def push_image(client: httpx.AsyncClient, repo: str, image: Image, tag: str) -> str:
    for blob in image.blobs:
        await push_blob(client, repo, blob)
    response = await client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
    )
    assert response.status_code == 201, response.text
    return response.headers["Docker-Content-Digest"]
