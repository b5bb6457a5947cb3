"""Prometheus metrics, with Quay's names for mirroring (§4.12), served at /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response


class MirrorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending_tags = Gauge(
            "quay_repository_mirror_pending_tags",
            "tags left in the current sync",
            ["namespace", "repository"],
            registry=registry,
        )
        self.last_sync_status = Gauge(
            "quay_repository_mirror_last_sync_status",
            "0 failed or cancelled, 1 success, 2 in progress",
            ["namespace", "repository", "last_error_reason"],
            registry=registry,
        )
        self.sync_complete = Gauge(
            "quay_repository_mirror_sync_complete",
            "1 if the last sync succeeded with no failed tags",
            ["namespace", "repository"],
            registry=registry,
        )
        self.sync_failures = Counter(
            "quay_repository_mirror_sync_failures",
            "failed syncs",
            ["namespace", "reason"],
            registry=registry,
        )
        self.last_sync_timestamp = Gauge(
            "quay_repository_mirror_last_sync_timestamp",
            "unix time the last sync started",
            ["namespace", "repository"],
            registry=registry,
        )
        self.sync_duration = Histogram(
            "quay_repository_mirror_sync_duration_seconds",
            "sync duration",
            ["namespace"],
            buckets=(60, 300, 900, 3600, float("inf")),
            registry=registry,
        )
        self.workers_active = Gauge(
            "quay_repository_mirror_workers_active", "running mirror workers", registry=registry
        )
        self.rows_unmirrored = Gauge(
            "quay_repository_rows_unmirrored", "due mirrors not yet claimed", registry=registry
        )
        self.bytes_copied = Counter(
            "moorage_mirror_bytes_copied",
            "bytes downloaded from upstream registries",
            ["namespace"],
            registry=registry,
        )


class Metrics:
    """Every metric of one process, on its own registry (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.mirror = MirrorMetrics(self.registry)


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    async def get_metrics(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return get_metrics
