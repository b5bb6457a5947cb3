"""Write OCI image layouts on disk (for skopeo/podman) from seedable random data.

Every layer is a real ``tar+gzip`` file system layer (a directory holding one or a few files of
random content) that podman can unpack, and every config carries the ``diff_ids`` (sha256 of the
*uncompressed* tar) that podman checks. Output is reproducible for a given ``random.Random`` seed
(fixed tar and gzip timestamps, ownership and modes).

Layers are generated and compressed in a stream: no more than one chunk (1 MiB) of layer data is
held in memory at a time, so the module also serves benchmarks with ~1 GiB layers. Random data does
not compress anyway: ``compresslevel=0`` (stored deflate blocks, still valid gzip) is ~5x faster
than the default 1 (about 300 MB/s against 50 MB/s), the right choice for large benchmark layers.

Layout written (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)::

    LAYOUT/oci-layout          {"imageLayoutVersion": "1.0.0"}
    LAYOUT/index.json          one entry per ref, annotated org.opencontainers.image.ref.name
    LAYOUT/blobs/sha256/<hex>  manifests, indexes, configs and layers

Usage::

    rng = random.Random(1234)
    digest = write_image(layout, "v1", layer_sizes=(1024, 4096), rng=rng)
    # skopeo copy oci:LAYOUT:v1 docker://...
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

OCI_LAYOUT_VERSION = "1.0.0"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

CHUNK = 1024 * 1024
IN_MEMORY_LIMIT = 16 * 1024 * 1024
# Fixed timestamp (2024-01-01T00:00:00Z) so identical seeds give identical blobs.
EPOCH = 1704067200
CREATED = "2024-01-01T00:00:00Z"
MAX_FILES_PER_LAYER = 4


@dataclass(frozen=True)
class Layer:
    """A layer blob: compressed ``digest``/``size`` plus the uncompressed tar's ``diff_id``."""

    digest: str
    size: int
    diff_id: str
    media_type: str = OCI_LAYER

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


# --- streaming primitives --------------------------------------------------------------------


class _HashingWriter(io.RawIOBase):
    """Write-only file object that hashes and counts what passes through to ``sink`` (if any)."""

    def __init__(self, sink: IO[bytes] | None) -> None:
        super().__init__()
        self._sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.hash.update(chunk)
        self.size += len(chunk)
        if self._sink is not None:
            self._sink.write(chunk)
        return len(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _RandomReader(io.RawIOBase):
    """Read-only file object yielding exactly ``size`` random bytes from ``rng``, lazily."""

    def __init__(self, size: int, rng: random.Random) -> None:
        super().__init__()
        self._left = size
        self._rng = rng

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self._left
        n = min(n, self._left, CHUNK)
        self._left -= n
        return self._rng.randbytes(n) if n else b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _split_sizes(size: int, rng: random.Random) -> list[int]:
    """Split ``size`` content bytes over 1..MAX_FILES_PER_LAYER files (some may be empty)."""
    count = rng.randint(1, MAX_FILES_PER_LAYER) if size >= MAX_FILES_PER_LAYER else 1
    cuts = sorted(rng.randint(0, size) for _ in range(count - 1))
    bounds = [0, *cuts, size]
    return [bounds[i + 1] - bounds[i] for i in range(count)]


def _write_layer_stream(out: IO[bytes], size: int, rng: random.Random, compresslevel: int) -> Layer:
    """Write a gzip-compressed tar of random files (``size`` content bytes in total) to ``out``."""
    compressed = _HashingWriter(out)
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=compressed, compresslevel=compresslevel, mtime=0
    ) as gz:
        uncompressed = _HashingWriter(gz)  # type: ignore[arg-type]
        tag = rng.getrandbits(64)
        with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            directory = tarfile.TarInfo(f"moorage-{tag:016x}")
            directory.type = tarfile.DIRTYPE
            directory.mode = 0o755
            directory.mtime = EPOCH
            tar.addfile(directory)
            for number, file_size in enumerate(_split_sizes(size, rng)):
                info = tarfile.TarInfo(f"{directory.name}/file-{number}.bin")
                info.size = file_size
                info.mode = 0o644
                info.mtime = EPOCH
                tar.addfile(info, _RandomReader(file_size, rng))
    return Layer(digest=compressed.digest, size=compressed.size, diff_id=uncompressed.digest)


def random_layer(
    path: str | os.PathLike[str] | None,
    size: int,
    rng: random.Random,
    *,
    compresslevel: int = 1,
) -> bytes | Path:
    """A valid tar+gzip layer with ``size`` bytes of random file content.

    With ``path=None`` the layer is returned as bytes (only allowed up to 16 MiB); otherwise it is
    streamed to ``path``, which is returned. Use :func:`layer_info` for its digest and diff_id.
    """
    if path is None:
        if size > IN_MEMORY_LIMIT:
            raise ValueError(f"layers over {IN_MEMORY_LIMIT} bytes must be written to a path")
        buffer = io.BytesIO()
        _write_layer_stream(buffer, size, rng, compresslevel)
        return buffer.getvalue()
    target = Path(path)
    with target.open("wb") as out:
        _write_layer_stream(out, size, rng, compresslevel)
    return target


def layer_info(layer: bytes | str | os.PathLike[str]) -> Layer:
    """Digest, size and diff_id of a tar+gzip layer given as bytes or a path (streamed)."""
    with contextlib.ExitStack() as stack:
        raw: BinaryIO
        if isinstance(layer, bytes):
            raw = io.BytesIO(layer)
        else:
            raw = stack.enter_context(Path(layer).open("rb"))
        compressed = hashlib.sha256()
        size = 0
        uncompressed = hashlib.sha256()
        reader = _TeeReader(raw, compressed)
        with gzip.GzipFile(fileobj=reader, mode="rb") as gz:
            while chunk := gz.read(CHUNK):
                uncompressed.update(chunk)
        size = reader.count
    return Layer(
        digest="sha256:" + compressed.hexdigest(),
        size=size,
        diff_id="sha256:" + uncompressed.hexdigest(),
    )


class _TeeReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO, hasher: Any) -> None:
        super().__init__()
        self._raw = raw
        self._hasher = hasher
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        self._hasher.update(data)
        self.count += len(data)
        buffer[: len(data)] = data
        return len(data)


# --- layout files ----------------------------------------------------------------------------


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(layout_dir: str | os.PathLike[str], digest: str) -> Path:
    algorithm, _, hex_part = digest.partition(":")
    return Path(layout_dir) / "blobs" / algorithm / hex_part


def read_blob(layout_dir: str | os.PathLike[str], digest: str) -> bytes:
    return blob_path(layout_dir, digest).read_bytes()


def _init_layout(layout_dir: Path) -> None:
    (layout_dir / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    marker = layout_dir / "oci-layout"
    if not marker.exists():
        marker.write_text(json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
    index = layout_dir / "index.json"
    if not index.exists():
        _atomic_write(index, _dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}))


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode()


def _atomic_write(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _put_blob(layout_dir: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    target = blob_path(layout_dir, digest)
    if not target.exists():
        _atomic_write(target, data)
    return digest


def _put_layer(layout_dir: Path, size: int, rng: random.Random, compresslevel: int) -> Layer:
    blobs = layout_dir / "blobs" / "sha256"
    fd, tmp = tempfile.mkstemp(dir=blobs, prefix=".layer-")
    try:
        with os.fdopen(fd, "wb") as out:
            layer = _write_layer_stream(out, size, rng, compresslevel)
        os.replace(tmp, blob_path(layout_dir, layer.digest))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return layer


def _tag(layout_dir: Path, ref: str, descriptor: dict[str, Any]) -> None:
    """Point ``ref`` at ``descriptor`` in index.json (replacing an older entry of that name)."""
    index_path = layout_dir / "index.json"
    index = json.loads(index_path.read_text())
    manifests = [
        entry
        for entry in index.get("manifests", [])
        if entry.get("annotations", {}).get(REF_NAME) != ref
    ]
    manifests.append({**descriptor, "annotations": {REF_NAME: ref}})
    index["manifests"] = manifests
    _atomic_write(index_path, _dumps(index))


def _resolve_shared(layout_dir: Path, shared: Layer | str) -> Layer:
    if isinstance(shared, Layer):
        if not blob_path(layout_dir, shared.digest).exists():
            raise FileNotFoundError(f"shared layer {shared.digest} is not in {layout_dir}")
        return shared
    return layer_info(blob_path(layout_dir, shared))


def _image(
    layout_dir: Path,
    *,
    layer_sizes: Sequence[int],
    architecture: str,
    os_name: str,
    variant: str | None,
    shared_layers: Sequence[Layer | str],
    rng: random.Random,
    compresslevel: int,
) -> dict[str, Any]:
    """Write layers, config and manifest blobs; return the manifest's descriptor."""
    layers = [_resolve_shared(layout_dir, shared) for shared in shared_layers]
    layers += [_put_layer(layout_dir, size, rng, compresslevel) for size in layer_sizes]
    platform: dict[str, Any] = {"architecture": architecture, "os": os_name}
    if variant:
        platform["variant"] = variant
    config = {
        "created": CREATED,
        **platform,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {"io.moorage.test.seed": f"{rng.getrandbits(32):08x}"},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": CREATED, "created_by": f"moorage test layer {n}"}
            for n in range(len(layers))
        ],
    }
    config_bytes = _dumps(config)
    config_digest = _put_blob(layout_dir, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [layer.descriptor() for layer in layers],
    }
    manifest_bytes = _dumps(manifest)
    return {
        "mediaType": OCI_MANIFEST,
        "digest": _put_blob(layout_dir, manifest_bytes),
        "size": len(manifest_bytes),
        "platform": platform,
    }


def write_image(
    layout_dir: str | os.PathLike[str],
    ref: str,
    *,
    layer_sizes: Sequence[int],
    architecture: str = "amd64",
    os_name: str = "linux",
    variant: str | None = None,
    shared_layers: Sequence[Layer | str] = (),
    rng: random.Random,
    compresslevel: int = 1,
) -> str:
    """Write a single-platform OCI image tagged ``ref``; return its manifest digest.

    ``shared_layers`` (``Layer`` objects or digests of layer blobs already in the layout, e.g.
    from :func:`image_layers`) come first, followed by new random layers of ``layer_sizes``.
    """
    layout = Path(layout_dir)
    _init_layout(layout)
    descriptor = _image(
        layout,
        layer_sizes=layer_sizes,
        architecture=architecture,
        os_name=os_name,
        variant=variant,
        shared_layers=shared_layers,
        rng=rng,
        compresslevel=compresslevel,
    )
    descriptor.pop("platform")
    _tag(layout, ref, descriptor)
    return str(descriptor["digest"])


def write_index(
    layout_dir: str | os.PathLike[str],
    ref: str,
    *,
    architectures: Sequence[str] = ("amd64", "arm64"),
    layer_sizes: Sequence[int],
    rng: random.Random,
    compresslevel: int = 1,
) -> str:
    """Write a multi-arch OCI image index tagged ``ref`` (one image per architecture); return
    the index digest. Each child image gets its own random layers of ``layer_sizes``."""
    layout = Path(layout_dir)
    _init_layout(layout)
    children = [
        _image(
            layout,
            layer_sizes=layer_sizes,
            architecture=architecture,
            os_name="linux",
            variant="v8" if architecture == "arm64" else None,
            shared_layers=(),
            rng=rng,
            compresslevel=compresslevel,
        )
        for architecture in architectures
    ]
    index_bytes = _dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    digest = _put_blob(layout, index_bytes)
    _tag(layout, ref, {"mediaType": OCI_INDEX, "digest": digest, "size": len(index_bytes)})
    return digest


# --- reading layouts back --------------------------------------------------------------------


def resolve_ref(layout_dir: str | os.PathLike[str], ref: str) -> dict[str, Any]:
    """The index.json descriptor tagged ``ref`` (KeyError if absent)."""
    index = json.loads((Path(layout_dir) / "index.json").read_text())
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get(REF_NAME) == ref:
            return dict(entry)
    raise KeyError(f"{ref!r} is not in {layout_dir}/index.json")


def image_layers(layout_dir: str | os.PathLike[str], manifest_digest: str) -> list[Layer]:
    """The layers of an image manifest in the layout (diff_ids taken from its config)."""
    manifest = json.loads(read_blob(layout_dir, manifest_digest))
    config = json.loads(read_blob(layout_dir, manifest["config"]["digest"]))
    diff_ids = config["rootfs"]["diff_ids"]
    return [
        Layer(digest=d["digest"], size=d["size"], diff_id=diff_id, media_type=d["mediaType"])
        for d, diff_id in zip(manifest["layers"], diff_ids, strict=True)
    ]


def referenced_blobs(layout_dir: str | os.PathLike[str], digest: str) -> Iterator[str]:
    """``digest`` and every blob it references, recursively (manifests, configs, layers)."""
    yield digest
    document = json.loads(read_blob(layout_dir, digest))
    for child in document.get("manifests", []):
        yield from referenced_blobs(layout_dir, child["digest"])
    if "config" in document:
        yield document["config"]["digest"]
    for layer in document.get("layers", []):
        yield layer["digest"]
