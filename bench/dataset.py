"""The benchmark's input data: one big layer, and an OCI layout of many tags sharing layers.

Built once per run with ``tests.support.ocilayout`` (valid tar+gzip layers of random content,
streamed to disk), from a fixed seed, so every registry receives identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import ocilayout

ARCHES = ("amd64", "arm64")
REPOSITORIES = 3
BASE_LAYERS_PER_ARCH = 2
BASE_SHARE = 0.3  # of the dataset's bytes are the shared base layers


@dataclass(frozen=True)
class BigBlob:
    path: Path
    digest: str
    size: int


@dataclass(frozen=True)
class Ref:
    repository: str
    tag: str
    layout_tag: str
    multi_arch: bool


@dataclass(frozen=True)
class Dataset:
    layout: Path
    refs: tuple[Ref, ...]
    blob_count: int
    unique_bytes: int
    referenced_bytes: int
    warmup: Ref  # a tiny image of its own, pushed and pulled unmeasured first
    warmup_layer: BigBlob

    @property
    def multi_arch_count(self) -> int:
        return sum(ref.multi_arch for ref in self.refs)


def make_big_blob(directory: Path, size: int, seed: int = 1) -> BigBlob:
    """A tar+gzip layer with ``size`` bytes of random content (the file is a bit larger)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "big-layer.tar.gz"
    ocilayout.random_layer(path, size, random.Random(seed))
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(4 * 1024 * 1024):
            hasher.update(piece)
    return BigBlob(path, "sha256:" + hasher.hexdigest(), path.stat().st_size)


def _write_index(layout: Path, ref: str, children: list[tuple[str, str]]) -> None:
    """Tag ``ref`` as an OCI index over already-written single-arch images (digest, arch)."""
    manifests: list[dict[str, Any]] = []
    for digest, arch in children:
        size = ocilayout.blob_path(layout, digest).stat().st_size
        platform = {"architecture": arch, "os": "linux"}
        if arch == "arm64":
            platform["variant"] = "v8"
        manifests.append(
            {
                "mediaType": ocilayout.OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": platform,
            }
        )
    data = json.dumps(
        {"schemaVersion": 2, "mediaType": ocilayout.OCI_INDEX, "manifests": manifests}, indent=2
    ).encode()
    digest = ocilayout.sha256_digest(data)
    ocilayout.blob_path(layout, digest).write_bytes(data)
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text())
    index["manifests"] = [
        entry
        for entry in index["manifests"]
        if entry.get("annotations", {}).get(ocilayout.REF_NAME) != ref
    ]
    index["manifests"].append(
        {
            "mediaType": ocilayout.OCI_INDEX,
            "digest": digest,
            "size": len(data),
            "annotations": {ocilayout.REF_NAME: ref},
        }
    )
    index_path.write_text(json.dumps(index, indent=2))


def make_dataset(layout: Path, tags: int, total_bytes: int, seed: int = 2) -> Dataset:
    """``tags`` tags over 3 repositories; every other tag is a 2-arch index.

    Each architecture has base layers shared by all its images (about 30% of the bytes, so
    pushes exercise cross-repository mounts and existence checks); every image adds one
    layer of its own.
    """
    rng = random.Random(seed)
    layout.mkdir(parents=True, exist_ok=True)
    multi = [i % 2 == 0 for i in range(tags)]
    app_layers = sum(len(ARCHES) if m else 1 for m in multi)
    base_size = max(int(total_bytes * BASE_SHARE / (len(ARCHES) * BASE_LAYERS_PER_ARCH)), 1024)
    app_size = max(int(total_bytes * (1 - BASE_SHARE) / app_layers), 1024)

    base: dict[str, list[ocilayout.Layer]] = {}
    for arch in ARCHES:
        digest = ocilayout.write_image(
            layout, f"base-{arch}", layer_sizes=[base_size] * BASE_LAYERS_PER_ARCH,
            architecture=arch, rng=rng,
        )  # fmt: skip
        base[arch] = ocilayout.image_layers(layout, digest)

    refs: list[Ref] = []
    for number, is_multi in enumerate(multi):
        repository = f"bench/app-{number % REPOSITORIES}"
        tag = f"v{number}"
        layout_tag = f"{repository.replace('/', '-')}-{tag}"
        arches = ARCHES if is_multi else ARCHES[:1]
        children = []
        for arch in arches:
            digest = ocilayout.write_image(
                layout,
                f"{layout_tag}-{arch}" if is_multi else layout_tag,
                layer_sizes=[app_size],
                architecture=arch,
                variant="v8" if arch == "arm64" else None,
                shared_layers=base[arch],
                rng=rng,
            )
            children.append((digest, arch))
        if is_multi:
            _write_index(layout, layout_tag, children)
        refs.append(Ref(repository, tag, layout_tag, is_multi))

    warmup = Ref("bench/warmup", "latest", "warmup", multi_arch=False)
    warmup_digest = ocilayout.write_image(layout, warmup.layout_tag, layer_sizes=[4096], rng=rng)
    warmup_layer = ocilayout.image_layers(layout, warmup_digest)[0]

    referenced: set[str] = set()
    for ref in refs:
        descriptor = ocilayout.resolve_ref(layout, ref.layout_tag)
        referenced.update(ocilayout.referenced_blobs(layout, descriptor["digest"]))
    unique_bytes = sum(ocilayout.blob_path(layout, d).stat().st_size for d in referenced)
    return Dataset(
        layout=layout,
        refs=tuple(refs),
        blob_count=len(referenced),
        unique_bytes=unique_bytes,
        referenced_bytes=_bytes_per_tag(layout, refs),
        warmup=warmup,
        warmup_layer=BigBlob(
            ocilayout.blob_path(layout, warmup_layer.digest),
            warmup_layer.digest,
            warmup_layer.size,
        ),
    )


def _bytes_per_tag(layout: Path, refs: list[Ref]) -> int:
    """What the tags weigh counted one by one (shared layers counted every time)."""
    total = 0
    for ref in refs:
        descriptor = ocilayout.resolve_ref(layout, ref.layout_tag)
        for digest in set(ocilayout.referenced_blobs(layout, descriptor["digest"])):
            total += ocilayout.blob_path(layout, digest).stat().st_size
    return total


def disk_usage(path: Path) -> int:
    return sum(
        (Path(root) / name).stat().st_size for root, _, files in os.walk(path) for name in files
    )
