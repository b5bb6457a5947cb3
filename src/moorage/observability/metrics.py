"""Prometheus metrics, with Quay's names for mirroring (§4.12), served at /metrics.

HTTP metrics are recorded by ``observability.http``; storage and database latencies by
``observability.instrument``.
"""

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


class NotificationMetrics:
    """Webhook deliveries of repository notifications (one count per attempt's outcome)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "moorage_notification_attempts",
            "webhook delivery attempts by event and outcome: delivered, retry (failed, another "
            "attempt scheduled), failed (no attempts left), dropped (notification disabled)",
            ["event", "outcome"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "moorage_notification_attempt_duration_seconds",
            "time from sending a webhook to its answer (or the failure)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf")),
            registry=registry,
        )


# Request latencies: registry calls range from sub-millisecond HEADs to multi-minute blob PUTs.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf"))
# Storage and database calls: mostly milliseconds, a few seconds for big composes.
IO_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, float("inf"))


class HttpMetrics:
    """Per request, labelled by route template (``/v2/{name:path}/blobs/{digest}``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "moorage_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "moorage_http_request_duration_seconds",
            "time from request start to the last response byte",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "moorage_http_requests_in_flight", "requests being served", registry=registry
        )
        self.blob_bytes_in = Counter(
            "moorage_blob_bytes_received",
            "request body bytes received on /v2/<name>/blobs/... routes (blob uploads)",
            registry=registry,
        )
        self.blob_bytes_out = Counter(
            "moorage_blob_bytes_sent",
            "response body bytes sent on /v2/<name>/blobs/... routes (blob downloads)",
            registry=registry,
        )


class IoMetrics:
    """Latency of storage driver and database calls."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.storage = Histogram(
            "moorage_storage_operation_duration_seconds",
            "storage driver calls (read: until the first piece arrives)",
            ["operation"],
            buckets=IO_BUCKETS,
            registry=registry,
        )
        self.storage_errors = Counter(
            "moorage_storage_operation_errors",
            "storage driver calls that raised (absent keys excluded)",
            ["operation"],
            registry=registry,
        )
        self.db = Histogram(
            "moorage_db_statement_duration_seconds",
            "database statements, by kind (select, insert, update, delete, other)",
            ["statement"],
            buckets=IO_BUCKETS,
            registry=registry,
        )


class Metrics:
    """Every metric of one process, on its own registry (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.mirror = MirrorMetrics(self.registry)
        self.notifications = NotificationMetrics(self.registry)
        self.http = HttpMetrics(self.registry)
        self.io = IoMetrics(self.registry)


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    async def get_metrics(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return get_metrics
