"""Pure tag and platform selection."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import Any


def select_tags(tags: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """Quay's rule: tags matching any fnmatch pattern (case-sensitive), de-duplicated, sorted."""
    return sorted({t for t in tags if any(fnmatch.fnmatchcase(t, p) for p in patterns)})


def select_platforms(
    manifests: Sequence[dict[str, Any]], architectures: Sequence[str], max_entries: int
) -> list[dict[str, Any]]:
    """Index entries whose platform architecture is wanted (all variants, like Quay)."""
    wanted = set(architectures)
    out = []
    for entry in manifests[:max_entries]:
        platform = entry.get("platform") or {}
        if platform.get("architecture") in wanted:
            out.append(entry)
    return out


def available_architectures(manifests: Sequence[dict[str, Any]], max_entries: int) -> list[str]:
    found = []
    for entry in manifests[:max_entries]:
        arch = (entry.get("platform") or {}).get("architecture")
        if isinstance(arch, str) and arch != "unknown" and arch not in found:
            found.append(arch)
    return found
