"""BLOB_REDIRECTS with S3 against real clients: skopeo and httpx follow the 307 to the bucket.

Moorage runs as a process on SQLite + the moto S3 server with authentication on; skopeo pushes
an image, then pulls it back through the redirects (its Authorization header must not get in
the way of the presigned URL), and every blob must come back byte for byte. The metrics show
that the bytes did not flow through Moorage.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Clients
from tests.support import ocilayout
from tests.support.ocilayout import blob_path, referenced_blobs
from tests.support.s3server import s3_storage_params
from tests.support.server import ServerHandle, run_moorage

pytestmark = pytest.mark.integration
NO_TLS = "--tls-verify=false"
PASSWORD = "redirect test password"
BLOB_ROUTE = "/v2/{name:path}/blobs/{digest}"


@pytest.fixture
def redirecting(s3_endpoint: str, tmp_path: Path) -> Iterator[ServerHandle]:
    bucket = f"redirects-{uuid.uuid4().hex[:12]}"
    config: dict[str, Any] = {
        "DATA_DIR": tmp_path / "data",
        "REPO_MIRROR_WORKER": False,
        "BLOB_REDIRECTS": True,
        "DISTRIBUTED_STORAGE_CONFIG": {"s3": ["S3Storage", s3_storage_params(s3_endpoint, bucket)]},
        "DISTRIBUTED_STORAGE_PREFERENCE": ["s3"],
    }
    with run_moorage(config, tmp_path / "moorage") as server:
        try:
            yield server
        finally:
            print(f"--- moorage log ---\n{server.log()}")


def create_user(server: ServerHandle, name: str) -> None:
    command = [sys.executable, "-m", "moorage", "admin", "create-user", name]
    result = subprocess.run(
        [*command, "--password", PASSWORD, "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert re.search(r"access token \(shown once\)", result.stdout), result.stdout


def blob_metrics(server: ServerHandle) -> tuple[float, float]:
    """(blob GETs answered 307, blob response bytes sent) from /metrics."""
    text = httpx.get(f"{server.url}/metrics", trust_env=False, timeout=10).text
    redirects = sent = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "moorage_http_requests_total"
                and labels.get("route") == BLOB_ROUTE
                and (labels.get("method"), labels.get("status")) == ("GET", "307")
            ):
                redirects += sample.value
            if sample.name == "moorage_blob_bytes_sent_total":
                sent += sample.value
    return redirects, sent


def test_skopeo_and_httpx_follow_blob_redirects_to_s3(
    redirecting: ServerHandle, clients: Clients, tmp_path: Path
) -> None:
    create_user(redirecting, "alice")
    source = tmp_path / "source"
    layers = (2 * 1024 * 1024, 300 * 1024)
    digest = ocilayout.write_image(source, "v1", layer_sizes=layers, rng=random.Random(77))
    target = f"docker://{redirecting.host}/alice/app:v1"
    creds = f"alice:{PASSWORD}"
    clients.skopeo("copy", NO_TLS, "--dest-creds", creds, f"oci:{source}:v1", target)

    pulled = tmp_path / "pulled"
    clients.skopeo("copy", NO_TLS, "--src-creds", creds, target, f"oci:{pulled}:v1")

    blobs = [b for b in referenced_blobs(source, digest) if b != digest]
    assert len(blobs) == 3  # config and two layers
    for blob in blobs:
        assert blob_path(pulled, blob).read_bytes() == blob_path(source, blob).read_bytes()
    redirects, sent = blob_metrics(redirecting)
    assert redirects >= 2  # skopeo fetched the layers (and config) from the bucket
    assert sent < 100_000  # ... so their bytes never went through Moorage

    # httpx: a token for the repository, then GET, which follows the 307 to the bucket.
    token = httpx.get(
        f"{redirecting.url}/v2/auth",
        params={"service": redirecting.host, "scope": "repository:alice/app:pull"},
        auth=("alice", PASSWORD),
        trust_env=False,
        timeout=30,
    ).json()["token"]
    with httpx.Client(
        base_url=redirecting.url,
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
        timeout=30,
    ) as http:
        for blob in blobs:
            expected = blob_path(source, blob).read_bytes()
            first = http.get(f"/v2/alice/app/blobs/{blob}")
            assert first.status_code == 307
            assert first.headers["Docker-Content-Digest"] == blob
            followed = http.get(f"/v2/alice/app/blobs/{blob}", follow_redirects=True)
            assert followed.status_code == 200
            assert followed.history[0].status_code == 307
            assert followed.content == expected
            head = http.head(f"/v2/alice/app/blobs/{blob}")
            assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(expected)))
