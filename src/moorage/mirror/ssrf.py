"""Refuse mirror sources that point inside the network (SSRF), unless SSRF_ALLOWED_HOSTS says so.

Checked by the API when a mirror is created or changed, and again by the worker before every
sync (a DNS answer may change in between).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

from moorage.errors import InvalidRequest
from moorage.mirror.reference import ExternalReference

NOT_ALLOWED = "The provided registry location is not allowed"
BLOCKED_NAMES = frozenset(
    {
        "localhost",
        "metadata",
        "metadata.google.internal",
        "metadata.azure.internal",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
)
METADATA_IPS = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnresolvableHost(InvalidRequest):
    """The host name has no address (a DNS failure may be transient)."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Awaitable[list[str]]]


async def system_resolver(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _blocked_ip(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip in METADATA_IPS
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


class SsrfGuard:
    def __init__(self, allowed_hosts: Sequence[str], resolver: Resolver = system_resolver) -> None:
        self.allowed_names = {h.lower().rstrip(".") for h in allowed_hosts if not _is_network(h)}
        self.allowed_networks = [
            ipaddress.ip_network(h, strict=False) for h in allowed_hosts if _is_network(h)
        ]
        self.resolver = resolver

    def _allowed(self, host: str, ip: IPAddress | None = None) -> bool:
        if host.lower() in self.allowed_names:
            return True
        return ip is not None and any(ip in net for net in self.allowed_networks)

    async def check(self, reference: ExternalReference) -> None:
        """Raise InvalidRequest unless every address of the source host may be contacted."""
        await self.vetted_addresses(reference.host)

    async def vetted_addresses(self, host: str) -> list[str] | None:
        """The addresses ``host`` may be contacted at; None when it is allowed by name.

        Raises InvalidRequest when any of its addresses is refused, UnresolvableHost (an
        InvalidRequest) when it does not resolve.
        """
        host = host.lower()
        literal = _ip(host.strip("[]"))
        if literal is not None:
            if _blocked_ip(literal) and not self._allowed(host, literal):
                raise InvalidRequest(NOT_ALLOWED)
            return [str(literal)]
        if self._allowed(host):
            return None
        if host in BLOCKED_NAMES or host.endswith((".internal", ".local")):
            raise InvalidRequest(NOT_ALLOWED)
        try:
            addresses = await self.resolver(host)
        except (OSError, UnicodeError) as exc:
            raise UnresolvableHost(f"Cannot resolve hostname '{host}'") from exc
        if not addresses:
            raise UnresolvableHost(f"Cannot resolve hostname '{host}'")
        for address in addresses:
            ip = _ip(address.split("%", 1)[0])
            if ip is None or (_blocked_ip(ip) and not self._allowed(host, ip)):
                raise InvalidRequest(NOT_ALLOWED)
        return list(addresses)

    async def check_url_host(self, host: str, port: int | None = None) -> None:
        """Check a host reached through a redirect (same rules as the configured source)."""
        await self.check(ExternalReference(host=host, port=port, path="x"))


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True
