"""The mirror benchmark's input: one upstream repository of N tags sharing base layers.

Generated once per benchmark run with ``tests.support.ocilayout`` (valid tar+gzip layers of
random content, ``compresslevel=0``: random data does not compress anyway, and stored deflate
blocks are ~5x faster to write) from a fixed seed, then pushed into the upstream
docker-registry with ``skopeo copy`` (setup, not measured).

Shape, like a real application repository: every image starts with the base layers of its
architecture (``BASE_LAYERS_PER_ARCH`` layers, ~30% of the bytes, shared by all tags), then
a mid layer shared by a group of ``GROUP`` consecutive tags (a runtime that changes now and
then), then two layers of its own (the application, and a small one). Every third tag is a
2-architecture OCI index (amd64 + arm64/v8).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import ocilayout

ARCHES = ("amd64", "arm64")
BASE_LAYERS_PER_ARCH = 2
BASE_SHARE = 0.30  # of the bytes: base layers shared by every image of an architecture
MID_SHARE = 0.20  # of the bytes: layers shared by a group of consecutive tags
GROUP = 5
SMALL_LAYER = 24 * 1024
MULTI_ARCH_EVERY = 3
PUSH_TIMEOUT = 600.0
PUSH_PARALLEL = 2


@dataclass(frozen=True)
class MirrorDataset:
    layout: Path
    tags: tuple[str, ...]
    multi_arch: tuple[str, ...]
    blob_count: int
    unique_bytes: int  # what a cold sync must transfer (every blob once)
    warmup_tag: str = "warmup"  # a tiny image in a repository of its own (worker warm-up)

    @property
    def manifests(self) -> int:
        return len(self.tags) + 2 * len(self.multi_arch)


def _write_index(layout: Path, ref: str, children: list[tuple[str, str]]) -> None:
    """Tag ``ref`` as an OCI index over already written single-arch images (digest, arch)."""
    manifests: list[dict[str, Any]] = []
    for digest, arch in children:
        platform = {"architecture": arch, "os": "linux"}
        if arch == "arm64":
            platform["variant"] = "v8"
        size = ocilayout.blob_path(layout, digest).stat().st_size
        manifests.append(
            {"mediaType": ocilayout.OCI_MANIFEST, "digest": digest, "size": size,
             "platform": platform}
        )  # fmt: skip
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
        {"mediaType": ocilayout.OCI_INDEX, "digest": digest, "size": len(data),
         "annotations": {ocilayout.REF_NAME: ref}}
    )  # fmt: skip
    index_path.write_text(json.dumps(index, indent=2))


def make_mirror_dataset(layout: Path, tags: int, total_bytes: int, seed: int = 7) -> MirrorDataset:
    """``tags`` tags of about ``total_bytes`` unique bytes in all (see the module docstring)."""
    rng = random.Random(seed)
    layout.mkdir(parents=True, exist_ok=True)
    multi = [number % MULTI_ARCH_EVERY == 0 for number in range(tags)]
    images = sum(len(ARCHES) if m else 1 for m in multi)
    groups = (tags + GROUP - 1) // GROUP
    base_size = max(int(total_bytes * BASE_SHARE / (len(ARCHES) * BASE_LAYERS_PER_ARCH)), 4096)
    mid_size = max(int(total_bytes * MID_SHARE / (groups * len(ARCHES))), 4096)
    app_size = max(int(total_bytes * (1 - BASE_SHARE - MID_SHARE) / images), 4096)

    shared: dict[tuple[str, int], list[ocilayout.Layer]] = {}
    for arch in ARCHES:
        digest = ocilayout.write_image(
            layout, f"base-{arch}", layer_sizes=[base_size] * BASE_LAYERS_PER_ARCH,
            architecture=arch, rng=rng, compresslevel=0,
        )  # fmt: skip
        base = ocilayout.image_layers(layout, digest)
        for group in range(groups):
            digest = ocilayout.write_image(
                layout, f"mid-{arch}-{group}", layer_sizes=[mid_size], architecture=arch,
                shared_layers=base, rng=rng, compresslevel=0,
            )  # fmt: skip
            shared[(arch, group)] = ocilayout.image_layers(layout, digest)

    names: list[str] = []
    multi_names: list[str] = []
    for number, is_multi in enumerate(multi):
        tag = f"v1.{number}"
        arches = ARCHES if is_multi else ARCHES[:1]
        children = []
        for arch in arches:
            digest = ocilayout.write_image(
                layout,
                f"{tag}-{arch}" if is_multi else tag,
                layer_sizes=[app_size, SMALL_LAYER],
                architecture=arch,
                variant="v8" if arch == "arm64" else None,
                shared_layers=shared[(arch, number // GROUP)],
                rng=rng,
                compresslevel=0,
            )
            children.append((digest, arch))
        if is_multi:
            _write_index(layout, tag, children)
            multi_names.append(tag)
        names.append(tag)
    ocilayout.write_image(layout, "warmup", layer_sizes=[4096, 512], rng=rng, compresslevel=0)

    referenced: set[str] = set()
    for tag in names:
        descriptor = ocilayout.resolve_ref(layout, tag)
        referenced.update(ocilayout.referenced_blobs(layout, descriptor["digest"]))
    return MirrorDataset(
        layout=layout,
        tags=tuple(names),
        multi_arch=tuple(multi_names),
        blob_count=len(referenced),
        unique_bytes=sum(ocilayout.blob_path(layout, d).stat().st_size for d in referenced),
    )


# --- skopeo, isolated from the machine's containers configuration -------------------------------


@dataclass(frozen=True)
class SkopeoEnv:
    """A policy accepting anything and an empty registries.conf, under ``root``."""

    root: Path

    @classmethod
    def create(cls, root: Path) -> SkopeoEnv:
        (root / "home").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        (root / "policy.json").write_text(
            json.dumps({"default": [{"type": "insecureAcceptAnything"}]})
        )
        (root / "registries.conf").write_text("")
        (root / "auth.json").write_text(json.dumps({"auths": {}}))
        return cls(root)

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
            "CONTAINERS_REGISTRIES_CONF": str(self.root / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(self.root / "auth.json"),
            "LANG": "C.UTF-8",
        }

    def argv(self, *args: str) -> list[str]:
        return ["skopeo", "--policy", str(self.root / "policy.json"), *args]

    def run(self, *args: str, timeout: float = PUSH_TIMEOUT) -> None:
        result = subprocess.run(
            self.argv(*args),
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"skopeo {' '.join(args)} exited {result.returncode}: "
                f"{result.stderr.decode(errors='replace')[-2000:]}"
            )


def load_upstream(dataset: MirrorDataset, skopeo: SkopeoEnv, authority: str, repo: str) -> None:
    """Push every tag (and the warm-up image, into ``repo``-warmup) to the upstream registry."""

    def push(tag: str, target: str) -> None:
        skopeo.run(
            "copy", "--quiet", "--all", "--dest-tls-verify=false",
            f"oci:{dataset.layout}:{tag}", f"docker://{authority}/{target}",
        )  # fmt: skip

    push(dataset.warmup_tag, f"{repo}-warmup:latest")
    # The first tag alone: it uploads the shared base layers, which later tags then find.
    push(dataset.tags[0], f"{repo}:{dataset.tags[0]}")
    with ThreadPoolExecutor(PUSH_PARALLEL) as pool:
        for future in [pool.submit(push, t, f"{repo}:{t}") for t in dataset.tags[1:]]:
            future.result()
