"""Organizations for /api/v1: creation (the creator becomes admin) and the caller's view."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.auth import scopes as sc
from moorage.auth.permissions import Principal
from moorage.db.engine import Database
from moorage.db.models import Account, AccountKind, OrgRole
from moorage.db.queries.accounts import AccountQueries
from moorage.errors import NotFound
from moorage.services.accounts import AccountService
from moorage.services.audit import Actor


@dataclass(frozen=True, slots=True)
class OrgView:
    """An organization as one caller sees it."""

    org: Account
    is_admin: bool
    is_member: bool
    can_see_email: bool


class OrganizationService:
    def __init__(self, db: Database, accounts: AccountService) -> None:
        self.db = db
        self.accounts = accounts

    async def create(self, name: str, email: str | None, actor: Actor) -> Account:
        return await self.accounts.create_org(name, email, actor)

    async def view(self, principal: Principal, name: str) -> OrgView:
        async with self.db.transaction(readonly=True) as session:
            queries = AccountQueries(session)
            org = await queries.by_name(name)
            if org is None or org.kind != AccountKind.ORGANIZATION:
                raise NotFound("Not Found")
            role = None
            if principal.account_id is not None:
                role = await queries.org_role(org.id, principal.account_id)
        is_admin = role == OrgRole.ADMIN
        superuser = principal.superuser and principal.has_scope(sc.SUPER_USER)
        return OrgView(org, is_admin, role is not None, is_admin or superuser)
