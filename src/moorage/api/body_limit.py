"""Refuse oversized request bodies outside /v2/ before any handler reads them.

The management API (/api/v1, the web UI's session routes) takes small JSON documents, and
FastAPI reads a body whole before validating it. A declared ``Content-Length`` over the limit is
answered 413 without reading anything; a chunked body is read until it passes the limit, then
refused the same way. Blob and manifest uploads under /v2/ have limits of their own
(MAXIMUM_LAYER_SIZE, MAXIMUM_MANIFEST_SIZE) and are streamed, so they are not touched here.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moorage.api.errors import problem

_EXEMPT_PREFIX = "/v2"  # /v2 and /v2/...


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(_EXEMPT_PREFIX):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        # Buffered (at most max_bytes), then replayed: these bodies are small JSON documents,
        # which the handler would read whole anyway.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"Request body is larger than {self.max_bytes} bytes"
        response = problem(Request(scope), 413, message, "request_too_large")
        response.headers["Connection"] = "close"
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
