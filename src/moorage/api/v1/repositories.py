"""/api/v1/repository: create, list, get, delete, change visibility, change state."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from moorage.api.v1.deps import AccessDep, ActorDep, PrincipalDep, UserDep, writable
from moorage.api.v1.guards import check_repo
from moorage.api.v1.schemas import (
    RepositoryCreate,
    RepositoryCreated,
    RepositoryList,
    RepositoryRead,
    RepositorySummary,
    StateChange,
    Success,
    VisibilityChange,
    check_page_token,
)
from moorage.auth import scopes as sc
from moorage.auth.permissions import API_ADMIN, PULL, decide
from moorage.db.models import AccountKind, Repository, RepositoryState, Visibility
from moorage.errors import PermissionDenied
from moorage.services.management import ManagementServices

router = APIRouter(tags=["repository"], dependencies=[Depends(writable)])


def management(request: Request) -> ManagementServices:
    value: ManagementServices = request.app.state.management
    return value


def summary(repo: Repository) -> RepositorySummary:
    return RepositorySummary(
        namespace=repo.namespace,
        name=repo.name,
        description=repo.description,
        is_public=repo.visibility == Visibility.PUBLIC,
        state=RepositoryState(repo.state).name,
    )


@router.post("/repository", status_code=201, response_model=RepositoryCreated)
async def create_repository(
    body: RepositoryCreate, request: Request, principal: UserDep, access: AccessDep, actor: ActorDep
) -> RepositoryCreated:
    namespace = body.namespace or principal.name or ""
    if not principal.has_scope(sc.REPO_CREATE):
        raise PermissionDenied("Unauthorized")
    _, can_create = await access.namespace_rights(principal, namespace)
    if not can_create:
        raise PermissionDenied("Unauthorized")
    repo = await management(request).repositories.create(
        namespace, body.repository, Visibility(body.visibility), body.description, actor
    )
    return RepositoryCreated(namespace=repo.namespace, name=repo.name)


@router.get("/repository", response_model=RepositoryList)
async def list_repositories(
    request: Request,
    principal: PrincipalDep,
    namespace: str | None = None,
    public: bool = False,
    next_page: str | None = None,
    starred: bool = Query(False, description="accepted for compatibility; ignored"),
) -> RepositoryList:
    if principal.is_anonymous:
        public = True
    elif not principal.has_scope(sc.REPO_READ):
        raise PermissionDenied("Unauthorized")
    check_page_token(next_page, "after")
    page = await management(request).repositories.list(principal, namespace, public, next_page)
    return RepositoryList(
        repositories=[summary(r) for r in page.repositories], next_page=page.next_page
    )


@router.get("/repository/{namespace}/{repository}", response_model=RepositoryRead)
async def get_repository(
    namespace: str, repository: str, request: Request, principal: PrincipalDep, access: AccessDep
) -> RepositoryRead:
    facts = await check_repo(access, principal, namespace, repository, PULL)
    repo = await management(request).repositories.get(namespace, repository)
    owner = await request.app.state.accounts.get(namespace)
    return RepositoryRead(
        **summary(repo).model_dump(),
        can_write=decide(principal, facts, "write", access.policy)
        and facts.state == RepositoryState.NORMAL,
        can_admin=decide(principal, facts, API_ADMIN, access.policy),
        is_organization=owner.kind == AccountKind.ORGANIZATION,
    )


@router.delete("/repository/{namespace}/{repository}", status_code=204)
async def delete_repository(
    namespace: str,
    repository: str,
    request: Request,
    principal: PrincipalDep,
    access: AccessDep,
    actor: ActorDep,
) -> Response:
    await check_repo(access, principal, namespace, repository, API_ADMIN)
    await management(request).repositories.delete(namespace, repository, actor)
    return Response(status_code=204)


@router.post("/repository/{namespace}/{repository}/changevisibility", response_model=Success)
async def change_visibility(
    namespace: str,
    repository: str,
    body: VisibilityChange,
    request: Request,
    principal: PrincipalDep,
    access: AccessDep,
    actor: ActorDep,
) -> Success:
    await check_repo(access, principal, namespace, repository, API_ADMIN)
    await management(request).repositories.set_visibility(
        namespace, repository, Visibility(body.visibility), actor
    )
    return Success()


async def change_state(
    namespace: str,
    repository: str,
    body: StateChange,
    request: Request,
    principal: PrincipalDep,
    access: AccessDep,
    actor: ActorDep,
) -> Success:
    await check_repo(access, principal, namespace, repository, API_ADMIN)
    await management(request).repositories.set_state(
        namespace, repository, RepositoryState[body.state], actor
    )
    return Success()


def add_changestate(target: APIRouter) -> None:
    """Registered only when FEATURE_REPO_MIRROR is on (Quay gates it the same way)."""
    target.add_api_route(
        "/repository/{namespace}/{repository}/changestate",
        change_state,
        methods=["PUT"],
        response_model=Success,
        tags=["repository"],
        dependencies=[Depends(writable)],
    )
