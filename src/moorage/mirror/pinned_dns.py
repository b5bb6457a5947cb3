"""Connect only to addresses the SSRF guard has vetted, resolved once per connection.

The guard checks a mirror's source before every sync, but httpx would resolve the name again
when it connects: a DNS answer that changes in between (DNS rebinding) could then reach an
address the guard refuses. This network backend asks the guard at connect time and connects to
the vetted address itself. TLS still checks the certificate against the host name, which
httpcore passes separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from moorage.errors import InvalidRequest
from moorage.mirror import errors as e
from moorage.mirror.ssrf import SsrfGuard, UnresolvableHost


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend, guard: SsrfGuard) -> None:
        self.inner = inner
        self.guard = guard

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.guard.vetted_addresses(host)
        except UnresolvableHost as exc:
            raise httpcore.ConnectError(exc.message) from exc
        except InvalidRequest as exc:
            raise e.SourceNotAllowed(f"connecting to {host} is not allowed") from exc
        failure: Exception | None = None
        for address in addresses or [host]:
            try:
                return await self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for upstream registries")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guard_connections(transport: httpx.AsyncHTTPTransport, guard: SsrfGuard) -> None:
    """Route ``transport``'s connections through ``guard``.

    httpx does not expose httpcore's ``network_backend``; the pool's attribute is set instead,
    and a change of those internals fails here, loudly, rather than silently unguarded.
    """
    pool = getattr(transport, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or inner is None:
        raise RuntimeError("httpx/httpcore internals changed: cannot pin vetted addresses")
    pool._network_backend = GuardedBackend(inner, guard)
