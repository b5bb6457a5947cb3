"""/metrics: HTTP requests by route template, durations, blob bytes, storage and DB latency."""

from __future__ import annotations

import os

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.images import push_blob

pytestmark = pytest.mark.anyio
BLOB_ROUTE = "/v2/{name:path}/blobs/{digest}"
UPLOAD_ROUTE = "/v2/{name:path}/blobs/uploads/"
Samples = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(client: httpx.AsyncClient) -> Samples:
    """Every sample of /metrics: name -> [(labels, value)]."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    return sum(v for have, v in samples.get(name, []) if labels.items() <= have.items())


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    data = os.urandom(70_000)
    digest = await push_blob(client, "acme/secret-project", data)
    got = await client.get(f"/v2/acme/secret-project/blobs/{digest}")
    assert got.content == data
    head = await client.head(f"/v2/acme/secret-project/blobs/{digest}")
    assert head.status_code == 200
    missing = await client.get("/v2/acme/secret-project/blobs/sha256:" + "0" * 64)
    assert missing.status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404

    samples = await scrape(client)

    requests = "moorage_http_requests_total"
    assert value(samples, requests, method="POST", route=UPLOAD_ROUTE, status="201") == 1
    assert value(samples, requests, method="GET", route=BLOB_ROUTE, status="200") == 1
    assert value(samples, requests, method="HEAD", route=BLOB_ROUTE, status="200") == 1
    assert value(samples, requests, method="GET", route=BLOB_ROUTE, status="404") == 1
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    # Labels carry templates only: no repository name, digest or raw path leaks into them.
    for name, entries in samples.items():
        for labels, _ in entries:
            for label in labels.values():
                assert "secret-project" not in label, (name, labels)
                assert "/no/such" not in label, (name, labels)

    duration = "moorage_http_request_duration_seconds"
    assert value(samples, f"{duration}_count", method="GET", route=BLOB_ROUTE) == 2
    assert value(samples, f"{duration}_bucket", method="GET", route=BLOB_ROUTE, le="+Inf") == 2
    assert value(samples, f"{duration}_sum", method="GET", route=BLOB_ROUTE) > 0

    # Blob traffic: the upload body in, the download body out (plus small error bodies).
    assert value(samples, "moorage_blob_bytes_received_total") >= len(data)
    assert len(data) <= value(samples, "moorage_blob_bytes_sent_total") < len(data) + 1000
    assert value(samples, "moorage_http_requests_in_flight") == 1  # the scrape itself

    storage = "moorage_storage_operation_duration_seconds_count"
    assert value(samples, storage, operation="write") >= 1
    assert value(samples, storage, operation="read") >= 1
    assert value(samples, storage, operation="stat") >= 1
    db = "moorage_db_statement_duration_seconds_count"
    assert value(samples, db, statement="select") >= 1
    assert value(samples, db, statement="insert") >= 1


async def test_mirror_metrics_keep_quay_names(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert "quay_repository_mirror_workers_active" in response.text
    assert "moorage_mirror_bytes_copied_total" in response.text
