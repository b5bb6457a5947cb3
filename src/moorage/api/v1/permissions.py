"""/api/v1/repository/{namespace}/{repository}/permissions/user/: per-user repository roles."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from moorage.api.v1.deps import AccessDep, ActorDep, ManagementDep, PrincipalDep, writable
from moorage.api.v1.guards import check_repo
from moorage.api.v1.management_schemas import PermissionChange, PermissionList, PermissionRead
from moorage.auth.permissions import API_ADMIN
from moorage.db.models import RepoRole
from moorage.services.permissions import UserPermission

router = APIRouter(tags=["permission"], dependencies=[Depends(writable)])

BASE = "/repository/{namespace}/{repository}/permissions/user"


def permission_read(perm: UserPermission) -> PermissionRead:
    return PermissionRead(
        role=perm.role.value,
        name=perm.name,
        is_robot=perm.is_robot,
        is_org_member=perm.is_org_member,
    )


@router.get(f"{BASE}/", response_model=PermissionList)
async def list_user_permissions(
    namespace: str,
    repository: str,
    principal: PrincipalDep,
    access: AccessDep,
    management: ManagementDep,
) -> PermissionList:
    await check_repo(access, principal, namespace, repository, API_ADMIN)
    perms = await management.permissions.list_users(namespace, repository)
    return PermissionList(permissions={p.name: permission_read(p) for p in perms})


@router.get(f"{BASE}/{{username}}", response_model=PermissionRead)
async def get_user_permission(
    namespace: str,
    repository: str,
    username: str,
    principal: PrincipalDep,
    access: AccessDep,
    management: ManagementDep,
) -> PermissionRead:
    await check_repo(access, principal, namespace, repository, API_ADMIN)
    return permission_read(await management.permissions.get(namespace, repository, username))


@router.put(f"{BASE}/{{username}}", response_model=PermissionRead)
async def change_user_permission(
    namespace: str,
    repository: str,
    username: str,
    body: PermissionChange,
    principal: PrincipalDep,
    access: AccessDep,
    actor: ActorDep,
    management: ManagementDep,
) -> PermissionRead:
    await check_repo(access, principal, namespace, repository, API_ADMIN)
    perm = await management.permissions.set(
        namespace, repository, username, RepoRole(body.role), actor
    )
    return permission_read(perm)


@router.delete(f"{BASE}/{{username}}", status_code=204)
async def delete_user_permission(
    namespace: str,
    repository: str,
    username: str,
    principal: PrincipalDep,
    access: AccessDep,
    actor: ActorDep,
    management: ManagementDep,
) -> Response:
    await check_repo(access, principal, namespace, repository, API_ADMIN)
    await management.permissions.delete(namespace, repository, username, actor)
    return Response(status_code=204)
