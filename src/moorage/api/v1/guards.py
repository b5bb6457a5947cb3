"""Repository and namespace permission checks for /api/v1 handlers (401 / 403 / 404 order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from moorage.api.v1.deps import get_principal
from moorage.auth import scopes as sc
from moorage.auth.permissions import PULL, Principal, RepoFacts, decide
from moorage.db.models import RepositoryState
from moorage.errors import (
    AuthenticationRequired,
    NotFound,
    PermissionDenied,
    RepositoryNotNormal,
)
from moorage.services.access import AccessService

SCOPE_FOR = {PULL: sc.REPO_READ, "write": sc.REPO_WRITE, "admin": sc.REPO_ADMIN}


async def check_repo(
    access: AccessService, principal: Principal, namespace: str, name: str, action: str
) -> RepoFacts:
    """Allow ``action`` ("pull", "write", "admin") on the repository, or raise 401/403/404."""
    if principal.is_anonymous and action != PULL:
        raise AuthenticationRequired("Requires authentication")
    if not principal.is_anonymous and not principal.has_scope(SCOPE_FOR[action]):
        raise PermissionDenied("Unauthorized")
    facts = await access.facts(principal, f"{namespace}/{name}")
    if not facts.exists:
        admin, _ = await access.namespace_rights(principal, namespace)
        if admin:
            raise NotFound("Not Found")
        _deny(principal)
    if not decide(principal, facts, action, access.policy):
        _deny(principal)
    return facts


async def check_namespace_admin(
    access: AccessService, principal: Principal, namespace: str, scope: str = sc.ORG_ADMIN
) -> None:
    if principal.is_anonymous:
        raise AuthenticationRequired("Requires authentication")
    admin, _ = await access.namespace_rights(principal, namespace)
    if not admin or not principal.has_scope(scope):
        raise PermissionDenied("Unauthorized")


def require_normal(facts: RepoFacts) -> None:
    """Quay's disallow_for_non_normal_repositories: tag mutations need a NORMAL repository."""
    if facts.state != RepositoryState.NORMAL:
        raise RepositoryNotNormal(f"Repository is in read only or mirror mode: {facts.state.name}")


def _deny(principal: Principal) -> None:
    if principal.is_anonymous:
        raise AuthenticationRequired("Requires authentication")
    raise PermissionDenied("Unauthorized")


@dataclass(frozen=True, slots=True)
class RepoTarget:
    """The ``{namespace}/{repository}`` of a request, after the caller passed the check."""

    namespace: str
    name: str
    facts: RepoFacts


async def admin_repo(
    namespace: str,
    repository: str,
    request: Request,
    principal: Annotated[Principal, Depends(get_principal)],
) -> RepoTarget:
    """FastAPI dependency: the caller must administer the repository (repo:admin)."""
    access: AccessService = request.app.state.access_service
    facts = await check_repo(access, principal, namespace, repository, "admin")
    return RepoTarget(namespace, repository, facts)


AdminRepo = Annotated[RepoTarget, Depends(admin_repo)]
