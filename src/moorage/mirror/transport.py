"""Build the httpx client for one mirror: TLS verification, CA bundle, proxies, timeouts."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0


def _ssl_context(verify_tls: bool, ca_bundle: str | None) -> ssl.SSLContext | bool:
    if not verify_tls:
        return False
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def _proxy_mounts(proxy: dict[str, Any]) -> dict[str, httpx.AsyncHTTPTransport | None]:
    mounts: dict[str, httpx.AsyncHTTPTransport | None] = {}
    for scheme in ("http", "https"):
        url = proxy.get(f"{scheme}_proxy")
        if url:
            mounts[f"{scheme}://"] = httpx.AsyncHTTPTransport(proxy=str(url))
    for raw in str(proxy.get("no_proxy") or "").split(","):
        host = raw.strip()
        if host:
            pattern = host[1:] if host.startswith(".") else host
            mounts[f"all://*{pattern}" if host.startswith(".") else f"all://{pattern}"] = None
    return mounts


def build_client(
    registry_config: dict[str, Any], ca_bundle: str | None, max_connections: int
) -> httpx.AsyncClient:
    """An HTTP/1.1 client honouring the mirror's external_registry_config (Quay's keys).

    HTTP/1.1 on purpose: parallel blob downloads then use parallel TCP connections.
    """
    verify_tls = registry_config.get("verify_tls", True) is not False
    proxy = registry_config.get("proxy") or {}
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    mounts = _proxy_mounts(proxy) if isinstance(proxy, dict) else {}
    return httpx.AsyncClient(
        verify=_ssl_context(verify_tls, ca_bundle),
        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        limits=limits,
        mounts=mounts or None,
        follow_redirects=False,
        trust_env=False,
    )
