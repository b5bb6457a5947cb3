"""A webhook receiver on 127.0.0.1 for notification tests: records every POST, answers scripted
statuses (then 200), runs in a thread so the test's event loop keeps serving; HTTPS with ``tls``
(e.g. from tests.support.tlscerts)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.tlscerts import ServerPki


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    status: int  # what the receiver answered


@dataclass
class WebhookReceiver:
    host: str
    port: int
    scheme: str = "http"
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    def record(self, item: Received) -> None:
        with self.lock:
            self.received.append(item)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def delivered(self) -> list[Received]:
        """Requests answered with a 2xx."""
        return [r for r in self.snapshot() if 200 <= r.status < 300]

    async def wait_delivered(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered()
            if len(got) >= count:
                return got
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"webhook got {len(self.delivered())} deliveries, wanted {count}: {self.snapshot()}"
        )


@contextlib.contextmanager
def run_receiver(
    statuses: list[int] | None = None, tls: ServerPki | None = None
) -> Iterator[WebhookReceiver]:
    holder: list[WebhookReceiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = holder[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            status = receiver.next_status()
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw
            receiver.record(Received(self.path, dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.server_cert, tls.server_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    port = int(server.server_address[1])
    scheme = "https" if tls is not None else "http"
    receiver = WebhookReceiver("127.0.0.1", port, scheme, list(statuses or []))
    holder.append(receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
