"""Build the httpx client for one mirror: TLS verification, CA bundle, proxies, timeouts."""

from __future__ import annotations

import ssl
from typing import Any

import httpcore
import httpx

from moorage.mirror.pinned_dns import guard_connections
from moorage.mirror.ssrf import SsrfGuard

CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
BODY_READ_BYTES = 1024 * 1024


def _larger_body_reads() -> None:
    """Let httpcore read response bodies up to 1 MiB at a time instead of 64 KiB.

    asyncio hands over up to 256 KiB per socket read; with 64 KiB requests anyio splits that,
    copying the remainder each time, and every piece costs a pause/resume of the socket reader
    (two epoll_ctl calls) plus a pass through httpcore, httpx and our generators. Measured
    downloading 150 blobs of 2 MiB from docker-registry on 127.0.0.1 with 6 connections:
    0.68-0.74 s of CPU instead of 0.80-0.81 s. Memory is unchanged: a read returns what the
    socket has, at most asyncio's 256 KiB. (A class attribute, not public API: if httpcore
    renames it, this silently does nothing.)
    """
    connection = getattr(httpcore, "AsyncHTTP11Connection", None)
    current = getattr(connection, "READ_NUM_BYTES", None)
    if isinstance(current, int) and current < BODY_READ_BYTES:
        connection.READ_NUM_BYTES = BODY_READ_BYTES  # type: ignore[union-attr]


_larger_body_reads()


def _ssl_context(verify_tls: bool, ca_bundle: str | None) -> ssl.SSLContext | bool:
    if not verify_tls:
        return False
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def _proxy_mounts(
    proxy: dict[str, Any], verify: ssl.SSLContext | bool, limits: httpx.Limits
) -> dict[str, httpx.AsyncHTTPTransport | None]:
    """Transports through the configured proxies (TLS to the upstream checked as configured);
    ``None`` for the ``no_proxy`` hosts, which then use the client's direct transport."""
    mounts: dict[str, httpx.AsyncHTTPTransport | None] = {}
    for scheme in ("http", "https"):
        url = proxy.get(f"{scheme}_proxy")
        if url:
            mounts[f"{scheme}://"] = httpx.AsyncHTTPTransport(
                proxy=str(url), verify=verify, limits=limits
            )
    for raw in str(proxy.get("no_proxy") or "").split(","):
        host = raw.strip()
        if host:
            pattern = host[1:] if host.startswith(".") else host
            mounts[f"all://*{pattern}" if host.startswith(".") else f"all://{pattern}"] = None
    return mounts


def build_client(
    registry_config: dict[str, Any],
    ca_bundle: str | None,
    max_connections: int,
    ssrf: SsrfGuard | None = None,
) -> httpx.AsyncClient:
    """An HTTP/1.1 client honouring the mirror's external_registry_config (Quay's keys).

    HTTP/1.1 on purpose: parallel blob downloads then use parallel TCP connections. With
    ``ssrf``, direct connections go only to addresses the guard vetted when connecting (not
    through a configured proxy, which resolves names itself).
    """
    verify_tls = registry_config.get("verify_tls", True) is not False
    proxy = registry_config.get("proxy") or {}
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    verify = _ssl_context(verify_tls, ca_bundle)
    mounts = _proxy_mounts(proxy, verify, limits) if isinstance(proxy, dict) else {}
    direct = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    if ssrf is not None:
        guard_connections(direct, ssrf)
    return httpx.AsyncClient(
        transport=direct,
        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        mounts=mounts or None,
        follow_redirects=False,
        trust_env=False,
    )
