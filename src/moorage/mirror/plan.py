"""Pure planning: what a sync must do, from upstream listing and local state. No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from moorage.mirror.filters import select_tags


@dataclass(frozen=True, slots=True)
class SyncPlan:
    matching: tuple[str, ...]  # upstream tags selected by the rule, sorted
    to_prune: tuple[str, ...]  # local tags outside the matching set (Quay §4.8)
    local: Mapping[str, str] = field(default_factory=dict)  # local tag -> manifest digest

    def unchanged(self, tag: str, upstream_digest: str | None) -> bool:
        """True when the local tag already points at the upstream digest (nothing to copy)."""
        return upstream_digest is not None and self.local.get(tag) == upstream_digest


def make_plan(
    upstream_tags: Sequence[str], patterns: Sequence[str], local_tags: Mapping[str, str]
) -> SyncPlan:
    """Select upstream tags; every local tag not selected is obsolete.

    Unlike Quay (bug B6), obsolete tags are pruned even when nothing upstream matches — but a
    plan is only made from a successful listing, so a failed listing never prunes anything.
    """
    matching = tuple(select_tags(upstream_tags, patterns))
    wanted = set(matching)
    prune = tuple(sorted(t for t in local_tags if t not in wanted))
    return SyncPlan(matching=matching, to_prune=prune, local=dict(local_tags))
