"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, in front of a real registry (tests only).

Every request is forwarded to ``127.0.0.1:target_port`` (one upstream connection per request),
unless a *rule* matching its method and target (path plus query) says otherwise. A rule fires
for its first ``times`` matches (``None``: forever), so a fault can be transient or permanent,
and counts how often it fired (``rule.injected``; ``proxy.injected()`` sums by fault name).
Faults that alter a forwarded answer (all but ``Respond`` and ``Redirect``) only alter 2xx
answers; a match on an error answer still counts.

Faults (actions):

- ``Respond(status, headers, body)`` answers without asking upstream: ``error_status(503)``,
  ``rate_limited("2")`` (429 with Retry-After; a callable value is evaluated per answer),
  ``manifest_unknown()`` (404 MANIFEST_UNKNOWN: a listed tag that vanished);
- ``Reset(after)`` sends the head and ``after`` body bytes, then resets the connection (RST);
- ``Truncate(after)`` the same, then closes cleanly: Content-Length promised more;
- ``Corrupt()`` flips one byte in the middle of the body (same length, wrong digest);
  ``Corrupt(json_digest=True)`` changes one hex digit of the first digest in a JSON body, so a
  manifest still parses but no longer matches its digest;
- ``Drip(rate)`` paces the body at ``rate`` bytes per second (a tiny rate is a stall);
- ``Redirect(location)`` answers 307; ``{path}`` and ``{target}`` in ``location`` are filled in;
- ``AddTags(tags)`` adds names to a ``tags/list`` answer (tags that then vanish).

``require_token()`` puts a Docker bearer-token flow in front of ``/v2/``: 401 challenges whose
realm is the proxy's own ``/token``, optional Basic credentials there, tokens that stop working
after ``lifetime`` seconds or ``max_uses`` requests whatever ``expires_in`` they announced (so a
token expires mid-sync and the client must refresh); ``proxy.auth`` counts what happened.

Whole-proxy pacing: ``rate`` (bytes per second and connection, ``None``: unlimited) slows every
answer, and may be changed while it runs. ``bytes_down``/``bytes_up``, ``connections_total``
and ``active`` (open client connections) tell a test when data flows; ``seen`` records every
request (method, target, headers, time, the fault applied).

Bounded: loopback only, at most ``max_connections`` client connections at once, and it shuts
itself down after ``lifetime`` seconds even if nobody stops it. It runs its own event loop in a
daemon thread, so synchronous and asynchronous tests can both use it::

    with run_fault_proxy(upstream.port) as proxy:
        proxy.add("GET", r"/blobs/sha256:", Reset(after=4096), times=1)
        ...  # point the client at proxy.host
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http
import json
import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlsplit

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
PACE_STEPS_PER_SECOND = 20
MAX_CHUNK = 256 * 1024
MAX_HEAD = 64 * 1024
RESET_FLUSH_SECONDS = 0.1  # let the partial body reach the client before the RST
TOKEN_PATH = "/token"
SERVICE = "faultproxy"
_METHOD_START = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGEST_HEX = re.compile(rb'"sha256:([0-9a-f])')
_REPOSITORY = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")

HeaderValue = str | Callable[[], str]


# --- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Respond:
    """Answer ``status`` without asking upstream."""

    status: int
    headers: tuple[tuple[str, HeaderValue], ...] = ()
    body: bytes = b""
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or f"http_{self.status}"


def _errors_body(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


def error_status(status: int) -> Respond:
    """A server error with a distribution-style JSON body."""
    body = _errors_body("UNKNOWN", http.HTTPStatus(status).phrase)
    return Respond(status, (("Content-Type", "application/json"),), body)


def rate_limited(retry_after: HeaderValue) -> Respond:
    """429 TOOMANYREQUESTS with ``Retry-After`` (seconds, or an HTTP-date from a callable)."""
    body = _errors_body("TOOMANYREQUESTS", "too many requests")
    headers = (("Content-Type", "application/json"), ("Retry-After", retry_after))
    return Respond(429, headers, body, "rate_limited")


def manifest_unknown() -> Respond:
    """404 MANIFEST_UNKNOWN, as a registry answers for a tag deleted after it was listed."""
    body = _errors_body("MANIFEST_UNKNOWN", "manifest unknown")
    return Respond(404, (("Content-Type", "application/json"),), body, "vanished")


@dataclass(frozen=True)
class Reset:
    """Send the head and ``after`` body bytes, then reset the connection."""

    after: int
    name: ClassVar[str] = "reset"


@dataclass(frozen=True)
class Truncate:
    """Send the head and ``after`` body bytes, then close: the body is shorter than announced."""

    after: int
    name: ClassVar[str] = "truncate"


@dataclass(frozen=True)
class Corrupt:
    """Serve the body with one byte changed (same length), paced at ``rate`` bytes/s if set."""

    json_digest: bool = False
    rate: float | None = None
    name: ClassVar[str] = "corrupt"


@dataclass(frozen=True)
class Drip:
    """Pace the body at ``rate`` bytes per second."""

    rate: float
    name: ClassVar[str] = "drip"


@dataclass(frozen=True)
class Redirect:
    """Answer ``status`` with ``Location: location`` ({path} and {target} filled in)."""

    location: str
    status: int = 307
    name: ClassVar[str] = "redirect"


@dataclass(frozen=True)
class AddTags:
    """Add ``tags`` to a tags/list answer."""

    tags: tuple[str, ...]
    name: ClassVar[str] = "add_tags"


Action = Respond | Reset | Truncate | Corrupt | Drip | Redirect | AddTags


@dataclass
class Rule:
    method: re.Pattern[str]
    target: re.Pattern[str]
    action: Action
    times: int | None = None
    injected: int = 0

    @property
    def spent(self) -> bool:
        return self.times is not None and self.injected >= self.times


@dataclass(frozen=True)
class Seen:
    """One request the proxy received."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    at: float  # time.monotonic()
    fault: str | None  # name of the fault applied, "auth" for a 401 of the token flow

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass
class TokenAuth:
    """The bearer-token flow of ``require_token`` and its counters."""

    lifetime: float = 300.0
    max_uses: int | None = None
    expires_in: int = 300
    credentials: tuple[str, str] | None = None
    issued: int = 0
    refused: int = 0  # /token without the right credentials
    challenged: int = 0  # /v2/ request without a (known) token
    expired: int = 0  # /v2/ request with a token past its lifetime or uses
    tokens: dict[str, list[float]] = field(default_factory=dict)  # token -> [issued at, uses]


class _BadRequest(Exception):
    pass


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def wants_close(self) -> bool:
        connection = (self.header("connection") or "").lower()
        return "close" in connection or self.version == "HTTP/1.0"


class _Client:
    """The client side of one connection, with a read buffer of our own."""

    def __init__(
        self, proxy: FaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()

    async def fill(self) -> bool:
        data = await self.reader.read(MAX_CHUNK)
        if not data:
            return False
        self.buffer += data
        self.proxy.bytes_up += len(data)
        return True

    async def wait_gone(self) -> None:
        """Return once the client has closed its side (data it sends meanwhile is kept)."""
        with contextlib.suppress(OSError):
            while await self.fill():
                pass

    async def read_head(self) -> bytes | None:
        while True:
            if self.buffer and self.buffer[0] not in _METHOD_START:
                raise _BadRequest("not an HTTP request (a TLS handshake?)")
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buffer[: end + 4])
                del self.buffer[: end + 4]
                return head
            if len(self.buffer) > MAX_HEAD:
                raise _BadRequest("request head too large")
            if not await self.fill():
                if self.buffer:
                    raise _BadRequest("connection closed inside a request head")
                return None

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self.fill():
                raise _BadRequest("connection closed inside a request body")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def read_line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD or not await self.fill():
                raise _BadRequest("bad chunked request body")
        return await self.read_exactly(end + 2)

    async def read_body(self, request: _Request) -> bytes:
        if (request.header("transfer-encoding") or "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int((await self.read_line()).split(b";")[0], 16)
                if size == 0:
                    while (await self.read_line()) != b"\r\n":
                        pass
                    return bytes(body)
                body += await self.read_exactly(size)
                await self.read_exactly(2)
        length = request.header("content-length")
        return await self.read_exactly(int(length)) if length else b""


def _parse_request(head: bytes) -> _Request:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError as exc:
        raise _BadRequest("bad request line") from exc
    if not version.startswith("HTTP/1."):
        raise _BadRequest("not HTTP/1.x")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return _Request(method, target, version, headers)


def _head_bytes(status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _corrupt_json(body: bytes) -> bytes:
    match = _DIGEST_HEX.search(body)
    if match is None:  # not a manifest: flip a byte instead
        return _flip(body, len(body) // 2)
    position = match.start(1)
    replacement = b"1" if body[position : position + 1] == b"0" else b"0"
    return body[:position] + replacement + body[position + 1 :]


def _flip(data: bytes, position: int) -> bytes:
    if not data:
        return data
    position = min(position, len(data) - 1)
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


# --- the proxy ---------------------------------------------------------------------------------


class FaultProxy:
    def __init__(
        self,
        target_port: int,
        *,
        rate: float | None = None,
        max_connections: int = 64,
        lifetime: float = 300.0,
    ) -> None:
        self.target_port = target_port
        self.rate = rate
        self.max_connections = max_connections
        self.lifetime = lifetime
        self.port = 0
        self.bytes_down = 0
        self.bytes_up = 0
        self.connections_total = 0
        self.active = 0
        self.seen: list[Seen] = []
        self.auth: TokenAuth | None = None
        self._rules: list[Rule] = []
        self._history: list[Rule] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # --- configuration (called from the test's thread) -------------------------------------------
    def add(self, method: str, target: str, action: Action, *, times: int | None = None) -> Rule:
        """Apply ``action`` to requests whose method matches ``method`` (a regex, whole method)
        and whose target (path?query) contains a match of ``target``: the first ``times``
        matches (``None``: every one). Earlier rules win; a spent rule lets requests pass."""
        rule = Rule(re.compile(method), re.compile(target), action, times)
        with self._lock:
            self._rules.append(rule)
            self._history.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (their counts stay in ``injected()``)."""
        with self._lock:
            self._rules.clear()

    def require_token(
        self,
        *,
        lifetime: float = 300.0,
        max_uses: int | None = None,
        expires_in: int | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> TokenAuth:
        """Serve /v2/ only with a bearer token from the proxy's own /token endpoint."""
        announced = expires_in if expires_in is not None else max(1, int(lifetime))
        self.auth = TokenAuth(lifetime, max_uses, announced, credentials)
        return self.auth

    def injected(self) -> dict[str, int]:
        """Faults injected so far, by fault name."""
        counts: dict[str, int] = {}
        with self._lock:
            for rule in self._history:
                if rule.injected:
                    name = rule.action.name
                    counts[name] = counts.get(name, 0) + rule.injected
        if self.auth is not None and self.auth.expired:
            counts["token_expired"] = self.auth.expired
        return counts

    def requests(self, method: str = ".*", target: str = "") -> list[Seen]:
        """Requests received so far whose method and target match (as for ``add``)."""
        method_re, target_re = re.compile(method), re.compile(target)
        with self._lock:
            seen = list(self.seen)
        return [s for s in seen if method_re.fullmatch(s.method) and target_re.search(s.target)]

    # --- lifecycle (called from the test's thread) -----------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"fault proxy did not start: {self._error!r}")

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def wait_for_bytes(self, count: int, timeout: float) -> bool:
        """Block until ``bytes_down`` reaches ``count`` (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bytes_down >= count:
                return True
            time.sleep(0.05)
        return self.bytes_down >= count

    # --- the proxy's own thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() if it happens before _ready
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._connection(reader, writer)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(accepted, HOST, 0)
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.lifetime)
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections:
            writer.close()
            return
        self.active += 1
        self.connections_total += 1
        client = _Client(self, reader, writer)
        try:
            while True:
                try:
                    head = await client.read_head()
                    if head is None:
                        return
                    request = _parse_request(head)
                    body = await client.read_body(request)
                except _BadRequest:
                    writer.write(_head_bytes(400, "Bad Request", [("Connection", "close")]))
                    await writer.drain()
                    return
                if not await self._exchange(client, request, body) or request.wants_close:
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a side went away or spoke garbage: drop the connection
        finally:
            self.active -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    # --- one request ---------------------------------------------------------------------------
    def _take(self, request: _Request) -> Action | None:
        with self._lock:
            for rule in self._rules:
                if rule.spent:
                    continue
                if rule.method.fullmatch(request.method) and rule.target.search(request.target):
                    rule.injected += 1
                    return rule.action
        return None

    def _record(self, request: _Request, fault: str | None) -> None:
        headers = {k.lower(): v for k, v in request.headers}
        with self._lock:
            self.seen.append(Seen(request.method, request.target, headers, time.monotonic(), fault))

    async def _exchange(self, client: _Client, request: _Request, body: bytes) -> bool:
        """Answer one request; False when the client connection must close."""
        auth = self.auth
        if auth is not None and request.path == TOKEN_PATH:
            action = self._take(request)
            self._record(request, action.name if action else None)
            answer = action if isinstance(action, Respond) else self._token(auth, request)
            return await self._respond(client, request, answer)
        if auth is not None and request.path.startswith("/v2"):
            denied = self._check_token(auth, request)
            if denied is not None:
                self._record(request, "auth")
                return await self._respond(client, request, denied)
        action = self._take(request)
        self._record(request, action.name if action else None)
        if isinstance(action, Respond):
            return await self._respond(client, request, action)
        if isinstance(action, Redirect):
            location = action.location.format(path=request.path, target=request.target)
            answer = Respond(action.status, (("Location", location),), label=action.name)
            return await self._respond(client, request, answer)
        return await self._forward(client, request, body, action)

    async def _respond(self, client: _Client, request: _Request, answer: Respond) -> bool:
        headers = [(k, v() if callable(v) else v) for k, v in answer.headers]
        headers.append(("Content-Length", str(len(answer.body))))
        if request.wants_close:
            headers.append(("Connection", "close"))
        reason = http.HTTPStatus(answer.status).phrase
        data = _head_bytes(answer.status, reason, headers)
        if request.method != "HEAD":
            data += answer.body
        await self._down(client, data, self.rate)
        return True

    # --- the token flow ------------------------------------------------------------------------
    def _challenge(self, request: _Request, error: str | None) -> Respond:
        params = [f'realm="{self.url}{TOKEN_PATH}"', f'service="{SERVICE}"']
        match = _REPOSITORY.match(request.path)
        if match:
            params.append(f'scope="repository:{match.group(1)}:pull"')
        if error:
            params.append(f'error="{error}"')
        headers = (
            ("Content-Type", "application/json"),
            ("WWW-Authenticate", "Bearer " + ",".join(params)),
        )
        return Respond(401, headers, _errors_body("UNAUTHORIZED", "authentication required"))

    def _check_token(self, auth: TokenAuth, request: _Request) -> Respond | None:
        header = request.header("authorization") or ""
        if not header.lower().startswith("bearer "):
            auth.challenged += 1
            return self._challenge(request, None)
        entry = auth.tokens.get(header[7:].strip())
        if entry is None:
            auth.challenged += 1
            return self._challenge(request, "invalid_token")
        issued_at, uses = entry
        if time.monotonic() - issued_at > auth.lifetime or (
            auth.max_uses is not None and uses >= auth.max_uses
        ):
            auth.expired += 1
            return self._challenge(request, "invalid_token")
        entry[1] = uses + 1
        return None

    def _token(self, auth: TokenAuth, request: _Request) -> Respond:
        if auth.credentials is not None:
            expected = base64.b64encode(":".join(auth.credentials).encode()).decode()
            if (request.header("authorization") or "") != f"Basic {expected}":
                auth.refused += 1
                body = _errors_body("UNAUTHORIZED", "bad credentials")
                headers = (("WWW-Authenticate", f'Basic realm="{SERVICE}"'),)
                return Respond(401, headers, body, "token_refused")
        token = secrets.token_hex(16)
        auth.tokens[token] = [time.monotonic(), 0]
        auth.issued += 1
        issued_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        document = {
            "token": token,
            "access_token": token,
            "expires_in": auth.expires_in,
            "issued_at": issued_at,
        }
        headers = (("Content-Type", "application/json"),)
        return Respond(200, headers, json.dumps(document).encode(), "token")

    # --- forwarding ----------------------------------------------------------------------------
    async def _forward(
        self, client: _Client, request: _Request, body: bytes, action: Action | None
    ) -> bool:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, self.target_port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            await self._respond(client, request, error_status(502))
            return False
        try:
            skip = {"connection", "keep-alive", "content-length", "transfer-encoding"}
            if self.auth is not None:
                skip.add("authorization")
            headers = [(k, v) for k, v in request.headers if k.lower() not in skip]
            headers.append(("Connection", "close"))
            if body or request.method in {"POST", "PUT", "PATCH"}:
                headers.append(("Content-Length", str(len(body))))
            lines = [f"{request.method} {request.target} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in headers]
            up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await up_writer.drain()
            relay = asyncio.ensure_future(self._relay(client, request, up_reader, action))
            gone = asyncio.ensure_future(client.wait_gone())
            done, _ = await asyncio.wait({relay, gone}, return_when=asyncio.FIRST_COMPLETED)
            if relay in done:
                gone.cancel()
                await asyncio.gather(gone, return_exceptions=True)
                return relay.result()
            relay.cancel()  # the client went away mid-answer
            await asyncio.gather(relay, return_exceptions=True)
            return False
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(up_writer.wait_closed(), 1)

    async def _relay(
        self,
        client: _Client,
        request: _Request,
        upstream: asyncio.StreamReader,
        action: Action | None,
    ) -> bool:
        try:
            answer = _parse_answer(await upstream.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await self._respond(client, request, error_status(502))
            return False
        if request.wants_close:
            answer.headers.append(("Connection", "close"))
        status = answer.status
        if request.method == "HEAD" or status in {204, 304} or 100 <= status < 200:
            await self._down(client, answer.head(), self.rate)
            return True
        source = _body(upstream, answer.length, answer.chunked)
        if status >= 300:
            action = None  # faults apply to successful answers only
        if isinstance(action, AddTags) or (
            isinstance(action, Corrupt) and (action.json_digest or answer.length is None)
        ):
            data = _rewrite(action, b"".join([chunk async for chunk in source]))
            answer.set_length(len(data))
            await self._down(client, answer.head() + data, self.rate)
            return True
        if answer.length is None:  # re-framed as chunked towards the client
            answer.set_chunked()
        await self._down(client, answer.head(), self.rate)
        return await self._stream(client, source, answer.length, action)

    async def _stream(
        self,
        client: _Client,
        source: AsyncIterator[bytes],
        length: int | None,
        action: Action | None,
    ) -> bool:
        """Relay a body, applying a streaming fault; False when the connection was broken."""
        rate = self.rate
        if isinstance(action, Drip | Corrupt) and action.rate is not None:
            rate = action.rate if rate is None else min(rate, action.rate)
        cut: int | None = None
        if isinstance(action, Reset | Truncate):
            cut = action.after if length is None else min(action.after, max(length - 1, 0))
        flip_at = (length or 0) // 2 if isinstance(action, Corrupt) else None
        sent = 0
        async for data in source:
            chunk = data
            if cut is not None and sent + len(chunk) >= cut:
                chunk = chunk[: cut - sent]
            if flip_at is not None and sent <= flip_at < sent + len(chunk):
                chunk = _flip(chunk, flip_at - sent)
            if chunk:
                framed = chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk)
                await self._down(client, framed, rate)
            sent += len(chunk)
            if cut is not None and sent >= cut:
                await self._break(client, abort=isinstance(action, Reset))
                return False
        if length is None:
            await self._down(client, b"0\r\n\r\n", rate)
        return True

    async def _break(self, client: _Client, *, abort: bool) -> None:
        """End the answer early: RST (``abort``) or a clean close, after the bytes got out."""
        await client.writer.drain()
        await asyncio.sleep(RESET_FLUSH_SECONDS)
        if abort:
            sock = client.writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.writer.transport.abort()
        else:
            client.writer.close()

    async def _down(self, client: _Client, data: bytes, rate: float | None) -> None:
        """Send ``data`` to the client, paced at ``rate`` bytes per second (None: at once)."""
        view = memoryview(data)
        while view:
            step = len(view) if not rate else max(1, int(rate) // PACE_STEPS_PER_SECOND)
            piece, view = view[:step], view[step:]
            client.writer.write(piece)
            await client.writer.drain()
            self.bytes_down += len(piece)
            if rate:
                await asyncio.sleep(len(piece) / rate)


@dataclass
class _Answer:
    """An upstream answer's status line and headers (hop-by-hop headers dropped)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    length: int | None
    chunked: bool

    def head(self) -> bytes:
        return _head_bytes(self.status, self.reason, self.headers)

    def _without(self, *names: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() not in names]

    def set_length(self, length: int) -> None:
        self._without("content-length", "transfer-encoding")
        self.headers.append(("Content-Length", str(length)))

    def set_chunked(self) -> None:
        self._without("content-length", "transfer-encoding")
        self.headers.append(("Transfer-Encoding", "chunked"))


def _parse_answer(head: bytes) -> _Answer:
    lines = head.decode("latin-1").split("\r\n")
    _, status, reason = [*lines[0].split(" ", 2), ""][:3]
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    lower = {k.lower(): v for k, v in headers}
    chunked = "chunked" in lower.get("transfer-encoding", "").lower()
    length = None if chunked or "content-length" not in lower else int(lower["content-length"])
    hop_by_hop = {"connection", "keep-alive", "te"}
    kept = [(k, v) for k, v in headers if k.lower() not in hop_by_hop]
    return _Answer(int(status), reason, kept, length, chunked)


def _rewrite(action: AddTags | Corrupt, data: bytes) -> bytes:
    """A whole body with the fault applied (tags added, or one byte changed)."""
    if isinstance(action, AddTags):
        document = json.loads(data)
        document["tags"] = list(document.get("tags") or []) + list(action.tags)
        return json.dumps(document).encode()
    return _corrupt_json(data) if action.json_digest else _flip(data, len(data) // 2)


async def _body(
    upstream: asyncio.StreamReader, length: int | None, chunked: bool
) -> AsyncIterator[bytes]:
    """The upstream answer's body: ``length`` bytes, chunked (decoded), or up to the close."""
    if not chunked and length is None:
        while data := await upstream.read(MAX_CHUNK):
            yield data
        return
    if length is not None:
        remaining = length
        while remaining:
            data = await upstream.read(min(MAX_CHUNK, remaining))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            yield data
        return
    while True:
        size = int((await upstream.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while (await upstream.readuntil(b"\r\n")) != b"\r\n":
                pass
            return
        yield await upstream.readexactly(size)
        await upstream.readexactly(2)


@contextlib.contextmanager
def run_fault_proxy(
    target_port: int, *, rate: float | None = None, lifetime: float = 300.0
) -> Iterator[FaultProxy]:
    """A started FaultProxy to ``127.0.0.1:target_port``, stopped on exit."""
    with FaultProxy(target_port, rate=rate, lifetime=lifetime) as proxy:
        yield proxy
