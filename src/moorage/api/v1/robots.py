"""Robot accounts: /api/v1/organization/{org}/robots/... and /api/v1/user/robots/...

Tokens appear only in the responses that create or regenerate them (Moorage keeps only a hash).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from moorage.api.v1.deps import (
    AccessDep,
    ActorDep,
    ManagementDep,
    UserDep,
    require_scope,
    require_user_account,
    writable,
)
from moorage.api.v1.guards import check_namespace_admin
from moorage.api.v1.management_schemas import (
    RobotCreate,
    RobotCreated,
    RobotList,
    RobotListEntry,
    RobotRead,
    format_date,
)
from moorage.auth import scopes as sc
from moorage.auth.permissions import Principal
from moorage.db.models import Account, AccountKind
from moorage.services.accounts import CreatedSecret

router = APIRouter(tags=["robot"], dependencies=[Depends(writable)])

ORG = AccountKind.ORGANIZATION
USER = AccountKind.USER


def robot_read(robot: Account) -> RobotRead:
    return RobotRead(
        name=robot.username,
        created=format_date(robot.created_at),
        description=robot.description or "",
    )


def robot_created(created: CreatedSecret) -> RobotCreated:
    return RobotCreated(**robot_read(created.account).model_dump(), token=created.secret)


def robot_list(robots: list[Account]) -> RobotList:
    return RobotList(
        robots=[
            RobotListEntry(
                name=r.username,
                created=format_date(r.created_at),
                description=r.description or "",
            )
            for r in robots
        ]
    )


def own_namespace(principal: Principal) -> str:
    """The caller's namespace for /user/robots (users only; token scope user:admin)."""
    require_user_account(principal)
    require_scope(principal, sc.USER_ADMIN)
    assert principal.name is not None
    return principal.name


# --- organization robots -----------------------------------------------------------------------


@router.get("/organization/{orgname}/robots", response_model=RobotList)
async def list_org_robots(
    orgname: str, principal: UserDep, access: AccessDep, management: ManagementDep
) -> RobotList:
    await check_namespace_admin(access, principal, orgname, sc.ORG_ADMIN)
    return robot_list(list(await management.robots.list(orgname, ORG)))


@router.get("/organization/{orgname}/robots/{robot_shortname}", response_model=RobotRead)
async def get_org_robot(
    orgname: str,
    robot_shortname: str,
    principal: UserDep,
    access: AccessDep,
    management: ManagementDep,
) -> RobotRead:
    await check_namespace_admin(access, principal, orgname, sc.ORG_ADMIN)
    return robot_read(await management.robots.get(orgname, ORG, robot_shortname))


@router.put(
    "/organization/{orgname}/robots/{robot_shortname}",
    status_code=201,
    response_model=RobotCreated,
)
async def create_org_robot(
    orgname: str,
    robot_shortname: str,
    principal: UserDep,
    access: AccessDep,
    actor: ActorDep,
    management: ManagementDep,
    body: RobotCreate | None = None,
) -> RobotCreated:
    await check_namespace_admin(access, principal, orgname, sc.ORG_ADMIN)
    description = body.description if body else None
    created = await management.robots.create(orgname, ORG, robot_shortname, description, actor)
    return robot_created(created)


@router.delete("/organization/{orgname}/robots/{robot_shortname}", status_code=204)
async def delete_org_robot(
    orgname: str,
    robot_shortname: str,
    principal: UserDep,
    access: AccessDep,
    actor: ActorDep,
    management: ManagementDep,
) -> Response:
    await check_namespace_admin(access, principal, orgname, sc.ORG_ADMIN)
    await management.robots.delete(orgname, ORG, robot_shortname, actor)
    return Response(status_code=204)


@router.post(
    "/organization/{orgname}/robots/{robot_shortname}/regenerate", response_model=RobotCreated
)
async def regenerate_org_robot(
    orgname: str,
    robot_shortname: str,
    principal: UserDep,
    access: AccessDep,
    actor: ActorDep,
    management: ManagementDep,
) -> RobotCreated:
    await check_namespace_admin(access, principal, orgname, sc.ORG_ADMIN)
    return robot_created(await management.robots.regenerate(orgname, ORG, robot_shortname, actor))


# --- the caller's own robots -------------------------------------------------------------------


@router.get("/user/robots", response_model=RobotList)
async def list_user_robots(principal: UserDep, management: ManagementDep) -> RobotList:
    return robot_list(list(await management.robots.list(own_namespace(principal), USER)))


@router.get("/user/robots/{robot_shortname}", response_model=RobotRead)
async def get_user_robot(
    robot_shortname: str, principal: UserDep, management: ManagementDep
) -> RobotRead:
    namespace = own_namespace(principal)
    return robot_read(await management.robots.get(namespace, USER, robot_shortname))


@router.put("/user/robots/{robot_shortname}", status_code=201, response_model=RobotCreated)
async def create_user_robot(
    robot_shortname: str,
    principal: UserDep,
    actor: ActorDep,
    management: ManagementDep,
    body: RobotCreate | None = None,
) -> RobotCreated:
    namespace = own_namespace(principal)
    description = body.description if body else None
    created = await management.robots.create(namespace, USER, robot_shortname, description, actor)
    return robot_created(created)


@router.delete("/user/robots/{robot_shortname}", status_code=204)
async def delete_user_robot(
    robot_shortname: str, principal: UserDep, actor: ActorDep, management: ManagementDep
) -> Response:
    namespace = own_namespace(principal)
    await management.robots.delete(namespace, USER, robot_shortname, actor)
    return Response(status_code=204)


@router.post("/user/robots/{robot_shortname}/regenerate", response_model=RobotCreated)
async def regenerate_user_robot(
    robot_shortname: str, principal: UserDep, actor: ActorDep, management: ManagementDep
) -> RobotCreated:
    namespace = own_namespace(principal)
    return robot_created(
        await management.robots.regenerate(namespace, USER, robot_shortname, actor)
    )
