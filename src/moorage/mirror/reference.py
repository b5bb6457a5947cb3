"""Parse and validate ``external_reference`` (``host[:port]/path``), with Quay's error texts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from moorage.errors import InvalidRequest

_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_IPV6_AUTHORITY = re.compile(r"^\[([0-9A-Fa-f:.]+)\](?::(\d+))?\Z")


@dataclass(frozen=True, slots=True)
class ExternalReference:
    host: str  # hostname or IP literal, without brackets
    port: int | None
    path: str  # repository path on the upstream registry (may be nested)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    def __str__(self) -> str:
        return f"{self.authority}/{self.path}"


def parse_external_reference(value: str) -> ExternalReference:
    """Validate the format of a mirror source; raise InvalidRequest with Quay's messages."""
    if not value or not value.strip():
        raise InvalidRequest("External registry reference is required")
    if any(ch.isspace() for ch in value):
        raise InvalidRequest("External registry reference must not include whitespace")
    if "://" in value:
        raise InvalidRequest("External registry reference must not include a URL scheme")
    if any(ch in "?#\\%" or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidRequest("External registry reference contains an invalid character")
    authority, sep, path = value.partition("/")
    if not sep or not path.strip("/"):
        raise InvalidRequest("External registry reference must include a repository path")
    if "@" in authority or not authority:
        raise InvalidRequest("External registry reference contains an invalid registry authority")
    host, port = _split_authority(authority)
    return ExternalReference(host=host, port=port, path=path.strip("/"))


def _split_authority(authority: str) -> tuple[str, int | None]:
    ipv6 = _IPV6_AUTHORITY.match(authority)
    if ipv6:
        return ipv6.group(1), _port(ipv6.group(2))
    if authority.count(":") > 1:
        raise InvalidRequest("External registry reference contains an invalid registry authority")
    host, _, port_text = authority.partition(":")
    if ":" in authority and not port_text:
        raise InvalidRequest("External registry reference contains an invalid registry port")
    labels = host.rstrip(".").split(".")
    if not host or not all(_HOST_LABEL.match(label) for label in labels):
        raise InvalidRequest("External registry reference must include a valid registry hostname")
    return host.rstrip(".").lower(), _port(port_text or None)


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidRequest("External registry reference contains an invalid registry port")
    return int(text)
