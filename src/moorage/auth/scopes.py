"""Quay's OAuth-style scopes and what they allow."""

from __future__ import annotations

from moorage.db.models import RepoRole

REPO_READ = "repo:read"
REPO_WRITE = "repo:write"
REPO_ADMIN = "repo:admin"
REPO_CREATE = "repo:create"
USER_READ = "user:read"
USER_ADMIN = "user:admin"
ORG_ADMIN = "org:admin"
SUPER_USER = "super:user"

ALL_SCOPES = (
    REPO_READ,
    REPO_WRITE,
    REPO_ADMIN,
    REPO_CREATE,
    USER_READ,
    USER_ADMIN,
    ORG_ADMIN,
    SUPER_USER,
)

_ROLE_RANK = {RepoRole.READ: 1, RepoRole.WRITE: 2, RepoRole.ADMIN: 3}


def rank(role: RepoRole | None) -> int:
    return _ROLE_RANK[role] if role else 0


def repo_role_cap(scopes: frozenset[str] | None) -> RepoRole | None:
    """The highest repository role a token with ``scopes`` may exercise (None = no access)."""
    if scopes is None:
        return RepoRole.ADMIN
    if REPO_ADMIN in scopes:
        return RepoRole.ADMIN
    if REPO_WRITE in scopes:
        return RepoRole.WRITE
    if REPO_READ in scopes:
        return RepoRole.READ
    return None


def has_scope(scopes: frozenset[str] | None, scope: str) -> bool:
    """Unscoped credentials (passwords, robots) carry every scope their account has."""
    if scopes is None:
        return True
    if scope in scopes:
        return True
    implied = {
        REPO_READ: {REPO_WRITE, REPO_ADMIN},
        REPO_WRITE: {REPO_ADMIN},
        USER_READ: {USER_ADMIN},
    }
    return bool(implied.get(scope, set()) & scopes)
