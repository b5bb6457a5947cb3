"""Real clients against a real ``moorage serve``: skopeo and podman push, pull, list and delete.

Images are generated on disk as OCI layouts (tests/support/ocilayout.py) and must come back out
of Moorage byte for byte: same manifest bytes, same digests, same blobs. Every test runs on both
backends (SQLite + filesystem, PostgreSQL + S3) with its own server process.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Clients, require_binary
from tests.support import ocilayout
from tests.support.ocilayout import blob_path, read_blob, referenced_blobs, resolve_ref
from tests.support.server import ServerHandle, run_docker_registry
from tests.support.tlscerts import make_self_signed

pytestmark = pytest.mark.integration

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_ACCEPT = ", ".join(
    [
        ocilayout.OCI_MANIFEST,
        ocilayout.OCI_INDEX,
        DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
NO_TLS = "--tls-verify=false"
# A few small layers: 700 KiB, 64 KiB, 1 KiB of random content.
LAYER_SIZES = (700 * 1024, 64 * 1024, 1024)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def raw_manifest(clients: Clients, reference: str) -> bytes:
    """``skopeo inspect --raw`` of a docker:// reference: the manifest bytes the registry serves."""
    return clients.skopeo("inspect", NO_TLS, "--raw", f"docker://{reference}").stdout


def registry_manifest(server: ServerHandle, repository: str, reference: str) -> httpx.Response:
    response = httpx.get(
        f"{server.url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=30,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    return response


def assert_same_blobs(source: Path, copy: Path, digest: str) -> None:
    """Every blob reachable from ``digest`` is byte-identical in both OCI layouts."""
    checked = 0
    for blob in referenced_blobs(source, digest):
        original = blob_path(source, blob).read_bytes()
        copied = blob_path(copy, blob)
        assert copied.exists(), f"{blob} missing from {copy}"
        assert copied.read_bytes() == original, f"{blob} differs after the round trip"
        assert sha256(original) == blob
        checked += 1
    assert checked > 0


def test_oci_image_round_trip(
    moorage: ServerHandle, clients: Clients, tmp_path: Path, rng: random.Random
) -> None:
    source = tmp_path / "source"
    digest = ocilayout.write_image(source, "v1", layer_sizes=LAYER_SIZES, rng=rng)
    manifest = read_blob(source, digest)
    target = f"{moorage.host}/ns/oci-image:v1"

    clients.skopeo("copy", "--dest-tls-verify=false", f"oci:{source}:v1", f"docker://{target}")

    assert raw_manifest(clients, target) == manifest
    inspected = clients.skopeo_json("inspect", NO_TLS, f"docker://{target}")
    assert inspected["Digest"] == digest
    assert inspected["Architecture"] == "amd64"
    served = registry_manifest(moorage, "ns/oci-image", "v1")
    assert served.headers["Docker-Content-Digest"] == digest
    assert served.headers["Content-Type"] == ocilayout.OCI_MANIFEST
    assert served.content == manifest
    for blob in list(referenced_blobs(source, digest))[1:]:  # config and layers
        got = httpx.get(f"{moorage.url}/v2/ns/oci-image/blobs/{blob}", timeout=30, trust_env=False)
        assert got.status_code == 200, got.text
        assert got.content == read_blob(source, blob)

    out = tmp_path / "out"
    clients.skopeo("copy", "--src-tls-verify=false", f"docker://{target}", f"oci:{out}:v1")

    assert resolve_ref(out, "v1")["digest"] == digest
    assert clients.skopeo("inspect", "--raw", f"oci:{out}:v1").stdout == manifest
    assert_same_blobs(source, out, digest)


def test_docker_schema2_round_trip(
    moorage: ServerHandle, clients: Clients, tmp_path: Path, rng: random.Random
) -> None:
    source = tmp_path / "source"
    oci_digest = ocilayout.write_image(source, "v1", layer_sizes=LAYER_SIZES, rng=rng)
    oci_manifest = json.loads(read_blob(source, oci_digest))
    target = f"{moorage.host}/ns/docker-image:v1"

    clients.skopeo(
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        f"oci:{source}:v1",
        f"docker://{target}",
    )

    stored = raw_manifest(clients, target)
    document = json.loads(stored)
    assert document["mediaType"] == DOCKER_MANIFEST
    assert document["config"]["mediaType"] == DOCKER_CONFIG
    assert [layer["mediaType"] for layer in document["layers"]] == [DOCKER_LAYER] * 3
    # Conversion keeps the (already gzip-compressed) layer blobs as they are.
    assert [layer["digest"] for layer in document["layers"]] == [
        layer["digest"] for layer in oci_manifest["layers"]
    ]
    digest = sha256(stored)
    served = registry_manifest(moorage, "ns/docker-image", "v1")
    assert served.headers["Content-Type"] == DOCKER_MANIFEST
    assert served.headers["Docker-Content-Digest"] == digest
    assert clients.skopeo_json("inspect", NO_TLS, f"docker://{target}")["Digest"] == digest

    # dir: keeps the manifest exactly as served (no conversion), plus every blob as a file.
    out = tmp_path / "out"
    clients.skopeo("copy", "--src-tls-verify=false", f"docker://{target}", f"dir:{out}")
    pulled = (out / "manifest.json").read_bytes()
    assert pulled == stored
    assert raw_manifest(clients, f"{moorage.host}/ns/docker-image@{digest}") == stored
    for descriptor in [document["config"], *document["layers"]]:
        blob = (out / descriptor["digest"].split(":", 1)[1]).read_bytes()
        assert sha256(blob) == descriptor["digest"]
        assert len(blob) == descriptor["size"]
    for layer in oci_manifest["layers"]:
        blob = (out / layer["digest"].split(":", 1)[1]).read_bytes()
        assert blob == read_blob(source, layer["digest"])
    config = json.loads((out / document["config"]["digest"].split(":", 1)[1]).read_bytes())
    source_config = json.loads(read_blob(source, oci_manifest["config"]["digest"]))
    assert config["architecture"] == "amd64"
    assert config["rootfs"]["diff_ids"] == source_config["rootfs"]["diff_ids"]


def test_multi_arch_index_round_trip(
    moorage: ServerHandle, clients: Clients, tmp_path: Path, rng: random.Random
) -> None:
    source = tmp_path / "source"
    index_digest = ocilayout.write_index(
        source, "v1", architectures=("amd64", "arm64"), layer_sizes=(300 * 1024, 2048), rng=rng
    )
    index_bytes = read_blob(source, index_digest)
    children: list[dict[str, Any]] = json.loads(index_bytes)["manifests"]
    target = f"{moorage.host}/ns/multi:v1"

    clients.skopeo(
        "copy", "--all", "--dest-tls-verify=false", f"oci:{source}:v1", f"docker://{target}"
    )

    assert raw_manifest(clients, target) == index_bytes
    served = registry_manifest(moorage, "ns/multi", "v1")
    assert served.headers["Docker-Content-Digest"] == index_digest
    assert served.headers["Content-Type"] == ocilayout.OCI_INDEX
    for child in children:
        child_bytes = raw_manifest(clients, f"{moorage.host}/ns/multi@{child['digest']}")
        assert child_bytes == read_blob(source, child["digest"])
        assert sha256(child_bytes) == child["digest"]
    arm = clients.skopeo_json("--override-arch", "arm64", "inspect", NO_TLS, f"docker://{target}")
    assert arm["Architecture"] == "arm64"
    # skopeo reports the index digest as "Digest"; the layers show it resolved the arm64 child.
    arm_child = next(c for c in children if c["platform"]["architecture"] == "arm64")
    arm_manifest = json.loads(read_blob(source, arm_child["digest"]))
    assert arm["Layers"] == [layer["digest"] for layer in arm_manifest["layers"]]

    out = tmp_path / "out"
    clients.skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{target}", f"oci:{out}:v1")

    assert resolve_ref(out, "v1")["digest"] == index_digest
    assert clients.skopeo("inspect", "--raw", f"oci:{out}:v1").stdout == index_bytes
    assert_same_blobs(source, out, index_digest)


def test_list_tags_and_delete(
    moorage: ServerHandle, clients: Clients, tmp_path: Path, rng: random.Random
) -> None:
    source = tmp_path / "source"
    first = ocilayout.write_image(source, "first", layer_sizes=(4096,), rng=rng)
    second = ocilayout.write_image(source, "second", layer_sizes=(4096,), rng=rng)
    repository = f"{moorage.host}/ns/tagged"
    pushes = [("first", "a"), ("second", "b"), ("second", "b2"), ("first", "c")]
    for ref, tag in pushes:
        clients.skopeo(
            "copy", "--dest-tls-verify=false", f"oci:{source}:{ref}", f"docker://{repository}:{tag}"
        )

    def tags() -> list[str]:
        listed = clients.skopeo_json("list-tags", NO_TLS, f"docker://{repository}")
        return sorted(listed["Tags"] or [])

    assert tags() == ["a", "b", "b2", "c"]

    # skopeo delete resolves the tag and deletes the manifest by digest, so every tag pointing
    # at that manifest goes with it.
    clients.skopeo("delete", NO_TLS, f"docker://{repository}:b")
    assert tags() == ["a", "c"]
    gone = clients.skopeo("inspect", NO_TLS, "--raw", f"docker://{repository}:b2", check=False)
    assert gone.returncode != 0
    gone = clients.skopeo(
        "inspect", NO_TLS, "--raw", f"docker://{repository}@{second}", check=False
    )
    assert gone.returncode != 0
    assert b"manifest unknown" in gone.stderr.lower(), gone.stderr
    assert raw_manifest(clients, f"{repository}:a") == read_blob(source, first)

    clients.skopeo("delete", NO_TLS, f"docker://{repository}@{first}")
    assert tags() == []
    missing = clients.skopeo("delete", NO_TLS, f"docker://{repository}:a", check=False)
    assert missing.returncode != 0


def test_podman_pull_push_inspect(
    moorage: ServerHandle, clients: Clients, tmp_path: Path, rng: random.Random
) -> None:
    require_binary("podman")
    source = tmp_path / "source"
    # Not the host's architecture, so the check shows podman read it from the pulled config.
    digest = ocilayout.write_image(
        source, "v1", layer_sizes=LAYER_SIZES, architecture="arm64", variant="v8", rng=rng
    )
    source_config = read_blob(source, json.loads(read_blob(source, digest))["config"]["digest"])
    pulled_ref = f"{moorage.host}/ns/podman-src:v1"
    pushed_ref = f"{moorage.host}/ns/podman-dst:v2"
    clients.skopeo("copy", "--dest-tls-verify=false", f"oci:{source}:v1", f"docker://{pulled_ref}")
    policy = ("--signature-policy", str(clients.policy))

    clients.podman("pull", *policy, NO_TLS, pulled_ref)
    clients.podman("push", *policy, NO_TLS, pulled_ref, pushed_ref)

    inspected = json.loads(clients.podman("image", "inspect", pulled_ref).stdout)
    assert len(inspected) == 1
    assert inspected[0]["Architecture"] == "arm64"
    assert inspected[0]["Os"] == "linux"
    assert inspected[0]["Digest"] == digest
    assert inspected[0]["Id"] == sha256(source_config).split(":", 1)[1]
    # podman recompresses layers on push, but the config (with the diff_ids) is unchanged.
    pushed = clients.skopeo_json("inspect", NO_TLS, f"docker://{pushed_ref}")
    assert pushed["Architecture"] == "arm64"
    pushed_config = clients.skopeo("inspect", NO_TLS, "--config", "--raw", f"docker://{pushed_ref}")
    assert pushed_config.stdout == source_config
    pushed_manifest = json.loads(raw_manifest(clients, pushed_ref))
    for layer in pushed_manifest["layers"]:
        got = httpx.get(
            f"{moorage.url}/v2/ns/podman-dst/blobs/{layer['digest']}", timeout=30, trust_env=False
        )
        assert got.status_code == 200
        assert sha256(got.content) == layer["digest"]

    # A second, empty podman storage pulls the pushed copy and finds the same image id.
    clients.podman("pull", *policy, NO_TLS, pushed_ref, store="second")
    again = json.loads(clients.podman("image", "inspect", pushed_ref, store="second").stdout)
    assert again[0]["Id"] == inspected[0]["Id"]
    assert again[0]["Architecture"] == "arm64"


@pytest.mark.parametrize("mode", ["plain", "htpasswd", "tls+htpasswd"])
def test_docker_registry_serves_skopeo(
    mode: str, docker_registry_binary: str, clients: Clients, tmp_path: Path, rng: random.Random
) -> None:
    """The external-upstream helper for mirroring tests serves real pushes and pulls."""
    credentials = ("mirror-user", "s3cret-pass") if "htpasswd" in mode else None
    pki = make_self_signed(tmp_path / "tls") if mode.startswith("tls") else None
    tls = (pki.server_cert, pki.server_key) if pki else None
    source = tmp_path / "source"
    digest = ocilayout.write_image(source, "v1", layer_sizes=(2048, 1024), rng=rng)
    with run_docker_registry(tmp_path / "upstream", htpasswd=credentials, tls=tls) as upstream:
        assert upstream.url.startswith("https://" if tls else "http://")
        creds = ["--creds", ":".join(credentials)] if credentials else []
        dest_creds = ["--dest-creds", ":".join(credentials)] if credentials else []
        src_creds = ["--src-creds", ":".join(credentials)] if credentials else []
        target = f"docker://{upstream.host}/library/app:v1"

        clients.skopeo("copy", *dest_creds, "--dest-tls-verify=false", f"oci:{source}:v1", target)
        out = tmp_path / "out"
        clients.skopeo("copy", *src_creds, "--src-tls-verify=false", target, f"oci:{out}:v1")

        assert resolve_ref(out, "v1")["digest"] == digest
        assert_same_blobs(source, out, digest)
        listed = clients.skopeo_json(
            "list-tags", *creds, NO_TLS, f"docker://{upstream.host}/library/app"
        )
        assert listed["Tags"] == ["v1"]
        if credentials:
            anonymous = clients.skopeo("inspect", NO_TLS, "--raw", target, check=False)
            assert anonymous.returncode != 0
        clients.skopeo("delete", *creds, NO_TLS, f"docker://{upstream.host}/library/app@{digest}")
        gone = clients.skopeo("inspect", *creds, NO_TLS, "--raw", target, check=False)
        assert gone.returncode != 0
