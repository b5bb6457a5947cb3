"""The one function that answers (principal, repository, action) questions.

Registry handlers (through an AccessController) and /api/v1 handlers both end in ``decide``.
It is pure: the facts it needs are gathered by moorage.services.access beforehand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.datastructures import Headers

from moorage.auth import scopes as sc
from moorage.db.models import RepoRole, RepositoryState, Visibility

# Registry actions (docker token scopes) and API-level actions.
PULL = "pull"
PUSH = "push"
DELETE = "delete"
ADMIN = "*"  # registry token action: never granted on MIRROR / READ_ONLY repositories
API_ADMIN = "admin"  # /api/v1 repository administration (repo:admin), any state
API_WRITE = "write"  # /api/v1 tag changes: role check only; the state check answers 503
CREATE = "create"
ALL_ACTIONS = frozenset({PULL, PUSH, DELETE, ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated (or anonymous) caller."""

    kind: str  # "anonymous" | "user" | "robot" | "open"
    name: str | None = None
    account_id: int | None = None
    superuser: bool = False
    # None: unscoped credential (password, robot token). A set: an access token's scopes.
    scopes: frozenset[str] | None = None
    # For registry bearer tokens: repository -> actions granted when the token was issued.
    granted: dict[str, frozenset[str]] | None = field(default=None, hash=False, compare=False)

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    def has_scope(self, scope: str) -> bool:
        return sc.has_scope(self.scopes, scope)


ANONYMOUS = Principal("anonymous")


@dataclass(frozen=True, slots=True)
class RepoFacts:
    """What ``decide`` needs to know about one repository (or a name not yet created)."""

    namespace: str
    name: str
    exists: bool
    visibility: Visibility = Visibility.PRIVATE
    state: RepositoryState = RepositoryState.NORMAL
    role: RepoRole | None = None  # the principal's effective role (explicit, owner, org admin)
    can_create: bool = False  # the principal may create repositories in this namespace
    mirror_robot: str | None = None  # robot allowed to push while the repository is MIRROR


@dataclass(frozen=True, slots=True)
class Policy:
    """Registry-wide switches that influence decisions (from Settings)."""

    anonymous_access: bool = True
    registry_readonly: bool = False


def effective_role(principal: Principal, facts: RepoFacts) -> RepoRole | None:
    role = facts.role
    if principal.superuser and principal.has_scope(sc.SUPER_USER):
        role = RepoRole.ADMIN
    cap = sc.repo_role_cap(principal.scopes)
    if sc.rank(role) > sc.rank(cap):
        role = cap
    if facts.visibility == Visibility.PUBLIC and sc.rank(role) < sc.rank(RepoRole.READ):
        role = RepoRole.READ
    return role


def decide(principal: Principal, facts: RepoFacts, action: str, policy: Policy) -> bool:
    """May ``principal`` perform ``action`` on the repository described by ``facts``?"""
    if principal.is_anonymous and not (policy.anonymous_access and action == PULL):
        return False
    if not facts.exists:
        # A repository that does not exist yet: whoever may create it may also pull from it
        # (clients ask for "pull,push" before their first push).
        creatable = facts.can_create and principal.has_scope(sc.REPO_CREATE)
        if action in {PUSH, CREATE}:
            return creatable and not policy.registry_readonly
        return action == PULL and creatable
    role = effective_role(principal, facts)
    if action == PULL:
        return sc.rank(role) >= sc.rank(RepoRole.READ)
    if action in {PUSH, DELETE}:
        if policy.registry_readonly or sc.rank(role) < sc.rank(RepoRole.WRITE):
            return False
        return _state_allows_write(principal, facts)
    if action == ADMIN:
        # Quay never grants "*" on registry tokens for MIRROR or READ_ONLY repositories.
        return sc.rank(role) >= sc.rank(RepoRole.ADMIN) and facts.state == RepositoryState.NORMAL
    if action == API_ADMIN:
        return sc.rank(role) >= sc.rank(RepoRole.ADMIN)
    if action == API_WRITE:
        return sc.rank(role) >= sc.rank(RepoRole.WRITE)
    return False


def _state_allows_write(principal: Principal, facts: RepoFacts) -> bool:
    if facts.state == RepositoryState.NORMAL:
        return True
    if facts.state == RepositoryState.MIRROR:
        return (
            facts.mirror_robot is not None
            and principal.kind == "robot"
            and (principal.name == facts.mirror_robot)
        )
    return False


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
        return Principal("open", "anonymous", superuser=True)

    async def allowed_actions(
        self, principal: Principal, repository: str, actions: frozenset[str]
    ) -> frozenset[str]:
        return actions
