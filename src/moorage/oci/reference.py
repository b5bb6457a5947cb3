"""Repository-name and tag grammar from the OCI distribution specification."""

from __future__ import annotations

import re

from moorage.errors import NameInvalid, RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")
MAX_NAME_LENGTH = 255


class TagInvalid(RegistryError):
    """invalid tag"""

    code = "MANIFEST_INVALID"


def split_repository(name: str) -> tuple[str, str]:
    """Validate a repository name and split it into (namespace, repository).

    Moorage, like Quay, requires a namespace: ``ns/repo`` or nested ``ns/a/b``.
    """
    if len(name) > MAX_NAME_LENGTH or not NAME_RE.match(name):
        raise NameInvalid(f"invalid repository name {name!r}")
    namespace, sep, repo = name.partition("/")
    if not sep:
        raise NameInvalid(f"repository name {name!r} must include a namespace (namespace/name)")
    return namespace, repo


def validate_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise TagInvalid(f"invalid tag {tag!r}")
    return tag
