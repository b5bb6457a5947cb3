"""Send a request with a raw, unnormalised path to an ASGI app, as uvicorn would pass it on.

httpx removes ``..`` segments from URLs before sending; an attacker's client does not. uvicorn
percent-decodes the path (``%2F`` becomes ``/``, ``%0A`` a newline) and keeps the raw bytes in
``raw_path``; this helper builds the same scope. What uvicorn (httptools) refuses before the app
sees it is refused here too: characters outside printable ASCII in the request target are
percent-encoded (as a client must), and header values with control characters raise
``Unsendable``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from starlette.types import ASGIApp, Message


class Unsendable(ValueError):
    """The request cannot be expressed on the wire (uvicorn would answer 400 itself)."""


def wire_target(target: str) -> str:
    return "".join(c if 0x21 <= ord(c) <= 0x7E else quote(c, safe="") for c in target)


def _header_value(value: str) -> bytes:
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F or ord(c) > 0xFF for c in value):
        raise Unsendable(f"header value {value!r}")
    return value.encode("latin-1")


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


async def send(
    app: ASGIApp,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> RawResponse:
    raw_path, _, query = wire_target(target).partition("?")
    all_headers = [("host", "reg.test"), *headers]
    if body:
        all_headers.append(("content-length", str(len(body))))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), _header_value(v)) for k, v in all_headers],
        "client": ("127.0.0.1", 40000),
        "server": ("reg.test", 80),
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    status = 0
    out_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send_message(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for key, value in message.get("headers", []):
                out_headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send_message)
    return RawResponse(status, out_headers, b"".join(chunks))


PROBLEM_KEYS = frozenset(
    {"detail", "error_message", "message", "error_type", "title", "type", "status"}
)


def error_shape_problems(path: str, status: int, body: bytes) -> str | None:
    """Why an error response is not in the documented shape (None when it is)."""
    if status < 400:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return f"{status} body is not JSON: {body[:120]!r}"
    if path.startswith("/v2/"):
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if not isinstance(errors, list) or not errors:
            return f"{status} is not an OCI error envelope: {doc!r}"
        for error in errors:
            if not isinstance(error, dict) or not {"code", "message"} <= error.keys():
                return f"{status} error entry lacks code/message: {error!r}"
        return None
    if not isinstance(doc, dict) or not doc.keys() >= PROBLEM_KEYS:
        return f"{status} is not problem JSON: {doc!r}"
    if doc["status"] != status:
        return f"status field {doc['status']} != HTTP status {status}"
    if not doc["detail"] == doc["message"] == doc["error_message"]:
        return f"detail/message/error_message differ: {doc!r}"
    return None
