"""ASGI middleware: request ids, HTTP metrics and access log lines for every request.

- ``X-Request-ID``: a well-formed incoming value is kept (a load balancer's id ties its logs to
  ours), anything else is replaced by a fresh id; it is echoed on the response and bound to the
  log context for everything the request logs.
- Metrics are labelled with the route *template* the router matched (``/v2/{name:path}/blobs/
  {digest}``), never the raw path, so label values stay few whatever clients send.
- Blob traffic: request and response body bytes of ``/v2/<name>/blobs/...`` routes.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moorage.observability.logs import ACCESS_LOGGER, bind_log_context
from moorage.observability.metrics import HttpMetrics

access_log = logging.getLogger(ACCESS_LOGGER)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
# Polled by load balancers and Prometheus: their access lines are DEBUG, not INFO.
_QUIET_PREFIXES = ("/health/", "/metrics")


class RouteTemplates:
    """The path template of the route that handled a request.

    FastAPI's routes put themselves in ``scope["route"]``; plain Starlette routes under a
    FastAPI router only leave their ``endpoint`` there, so the route is looked up by endpoint
    (and, for an endpoint behind several routes, matched again) once the response is done.
    """

    def __init__(self) -> None:
        self._by_endpoint: dict[int, list[BaseRoute]] = {}
        self._router_id: int | None = None

    def __call__(self, scope: Scope) -> str:
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str) and path:
            return path
        endpoint, router = scope.get("endpoint"), scope.get("router")
        routes = getattr(router, "routes", None)
        if endpoint is None or routes is None:
            return UNMATCHED
        if self._router_id != id(router):
            self._by_endpoint = {}
            self._router_id = id(router)
        key = id(endpoint)
        if key not in self._by_endpoint:
            self._by_endpoint[key] = [
                r
                for r in routes
                if getattr(r, "endpoint", None) is endpoint or getattr(r, "app", None) is endpoint
            ]
        candidates = self._by_endpoint[key]
        if len(candidates) == 1:
            return str(getattr(candidates[0], "path", UNMATCHED))
        for candidate in candidates:
            if isinstance(candidate, Route) and candidate.matches(scope)[0] is not Match.NONE:
                return candidate.path
        return UNMATCHED


def is_blob_route(template: str) -> bool:
    return template.startswith("/v2/") and "/blobs/" in template


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _REQUEST_ID_RE.match(text) else None
    return None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.route_template = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        state: dict[str, Any] = {"status": 500, "in": 0, "out": 0}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["in"] += len(message.get("body", b""))
            return message

        async def tagging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            elif message["type"] == "http.response.body":
                state["out"] += len(message.get("body", b""))
            await send(message)

        started = time.perf_counter()
        self.metrics.in_flight.inc()
        with bind_log_context(request_id=request_id):
            try:
                await self.app(scope, counting_receive, tagging_send)
            finally:
                self.metrics.in_flight.dec()
                self._record(scope, state, time.perf_counter() - started)

    def _record(self, scope: Scope, state: dict[str, Any], seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        template = self.route_template(scope)
        status = int(state["status"])
        self.metrics.requests.labels(method, template, str(status)).inc()
        self.metrics.duration.labels(method, template).observe(seconds)
        if is_blob_route(template):
            self.metrics.blob_bytes_in.inc(state["in"])
            self.metrics.blob_bytes_out.inc(state["out"])
        path: str = scope.get("path", "")
        level = logging.DEBUG if path.startswith(_QUIET_PREFIXES) else logging.INFO
        if access_log.isEnabledFor(level):
            client = scope.get("client")
            access_log.log(
                level,
                "%s %s %d",
                scope["method"],
                path,
                status,
                extra={
                    "method": scope["method"],
                    "path": path,
                    "route": template,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                    "bytes_in": state["in"],
                    "bytes_out": state["out"],
                    "remote": client[0] if client else None,
                },
            )
