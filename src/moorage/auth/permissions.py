"""The one place that answers (principal, repository, action) questions.

Registry handlers and API handlers both ask an AccessController; nothing else decides access.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.datastructures import Headers

PULL = "pull"
PUSH = "push"
DELETE = "delete"
ALL_ACTIONS = frozenset({PULL, PUSH, DELETE, "*"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated (or anonymous) caller."""

    kind: str  # "anonymous" | "user" | "robot" | "token" | "open"
    name: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Principal("anonymous")


class AccessController(Protocol):
    async def authenticate(self, headers: Headers) -> Principal:
        """Identify the caller from request headers (Authorization). Raise Unauthorized if bad."""
        ...

    async def allowed_actions(
        self, principal: Principal, repository: str, actions: frozenset[str]
    ) -> frozenset[str]:
        """The subset of ``actions`` that ``principal`` may perform on ``repository``."""
        ...


class OpenAccess:
    """INSECURE_OPEN_REGISTRY_NO_AUTH: everyone may do everything. For tests only."""

    async def authenticate(self, headers: Headers) -> Principal:
        return Principal("open", "anonymous")

    async def allowed_actions(
        self, principal: Principal, repository: str, actions: frozenset[str]
    ) -> frozenset[str]:
        return actions
