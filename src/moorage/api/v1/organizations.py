"""/api/v1/organization: create an organization, read one."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from moorage.api.v1.deps import (
    AccessDep,
    ActorDep,
    ManagementDep,
    PrincipalDep,
    UserDep,
    require_user_account,
    writable,
)
from moorage.api.v1.management_schemas import OrganizationCreate, OrganizationRead
from moorage.auth import scopes as sc
from moorage.errors import AuthenticationRequired, PermissionDenied

router = APIRouter(tags=["organization"], dependencies=[Depends(writable)])


@router.post("/organization/", status_code=201, response_model=str)
async def create_organization(
    body: OrganizationCreate, principal: UserDep, actor: ActorDep, management: ManagementDep
) -> str:
    """Create an organization; the caller becomes its admin (scope user:admin or org:admin)."""
    require_user_account(principal)
    if not (principal.has_scope(sc.USER_ADMIN) or principal.has_scope(sc.ORG_ADMIN)):
        raise PermissionDenied("Unauthorized")
    await management.organizations.create(body.name, body.email, actor)
    return "Created"


@router.get("/organization/{orgname}", response_model=OrganizationRead)
async def get_organization(
    orgname: str, principal: PrincipalDep, access: AccessDep, management: ManagementDep
) -> OrganizationRead:
    """Public, as in Quay; the e-mail and team fields only for admins and members."""
    if principal.is_anonymous and not access.policy.anonymous_access:
        raise AuthenticationRequired("Anonymous access is not allowed")
    view = await management.organizations.view(principal, orgname)
    return OrganizationRead(
        name=view.org.username,
        email=(view.org.email or "") if view.can_see_email else "",
        is_admin=view.is_admin,
        is_member=view.is_member,
        teams={} if view.is_member else None,
        ordered_teams=[] if view.is_member else None,
    )
