"""A byte-rate-limiting TCP proxy on 127.0.0.1, to make an upstream registry slow on purpose.

It forwards every connection to ``127.0.0.1:target_port``; bytes from the server to the client
("down") are paced to ``rate`` bytes per second per connection (``None``: unlimited), bytes from
the client to the server pass at full speed. ``rate`` may be changed while it runs (e.g. to let a
second attempt finish quickly). Counters ``bytes_down``/``bytes_up`` tell a test when data is
flowing.

Bounded: it listens and connects on loopback only, accepts at most ``max_connections`` at once,
and shuts itself down after ``lifetime`` seconds even if nobody stops it. It runs its own event
loop in a daemon thread, so synchronous and asynchronous tests can both use it::

    with run_slow_proxy(upstream.port, rate=3 * 1024 * 1024) as proxy:
        ...  # point the client at proxy.host
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
PACE_STEPS_PER_SECOND = 20
MAX_CHUNK = 256 * 1024


class SlowProxy:
    def __init__(
        self,
        target_port: int,
        rate: float | None,
        *,
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
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    # --- lifecycle (called from the test's thread) ---------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="slowproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"slow proxy did not start: {self._error!r}")

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)

    def __enter__(self) -> SlowProxy:
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

    # --- the proxy's own thread -------------------------------------------------------------------
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
                await self._handle(reader, writer)
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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections:
            writer.close()
            return
        self.active += 1
        self.connections_total += 1
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, self.target_port), CONNECT_TIMEOUT
            )
            assert upstream_writer is not None
            pipes = [
                asyncio.ensure_future(self._pipe(reader, upstream_writer, down=False)),
                asyncio.ensure_future(self._pipe(upstream_reader, writer, down=True)),
            ]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        except (OSError, TimeoutError):
            pass  # upstream unreachable: drop the client connection
        finally:
            self.active -= 1
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(w.wait_closed(), 1)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, down: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while True:
                rate = self.rate if down else None
                size = (
                    MAX_CHUNK
                    if not rate
                    else max(1, min(MAX_CHUNK, int(rate) // PACE_STEPS_PER_SECOND))
                )
                data = await source.read(size)
                if not data:
                    return
                sink.write(data)
                await sink.drain()
                if down:
                    self.bytes_down += len(data)
                else:
                    self.bytes_up += len(data)
                if rate:
                    await asyncio.sleep(len(data) / rate)


@contextlib.contextmanager
def run_slow_proxy(
    target_port: int, rate: float | None, *, lifetime: float = 300.0
) -> Iterator[SlowProxy]:
    """A started SlowProxy to ``127.0.0.1:target_port``, stopped on exit."""
    with SlowProxy(target_port, rate, lifetime=lifetime) as proxy:
        yield proxy
