"""Usage logs: /api/v1/repository/{namespace}/{repository}/logs, /api/v1/organization/{org}/logs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from moorage.api.v1.deps import AccessDep, ManagementDep, PrincipalDep, UserDep, writable
from moorage.api.v1.guards import check_namespace_admin, check_repo
from moorage.api.v1.management_schemas import LogEntryRead, LogList, LogPerformer, format_date
from moorage.api.v1.schemas import check_page_token
from moorage.auth import scopes as sc
from moorage.auth.permissions import API_ADMIN
from moorage.db.models import AuditLog
from moorage.services.logs import LogPage

router = APIRouter(tags=["logs"], dependencies=[Depends(writable)])

DATE_HELP = 'Format "%m/%d/%Y" in UTC'


def entry_read(entry: AuditLog) -> LogEntryRead:
    performer = None
    if entry.performer and entry.performer_kind in {"user", "robot"}:
        performer = LogPerformer(name=entry.performer, is_robot=entry.performer_kind == "robot")
    return LogEntryRead(
        kind=entry.kind,
        metadata=dict(entry.metadata_json),
        ip=entry.ip,
        datetime=format_date(entry.created_at),
        performer=performer,
    )


def log_list(page: LogPage) -> LogList:
    return LogList(
        start_time=format_date(page.start),
        end_time=format_date(page.end),
        logs=[entry_read(e) for e in page.entries],
        next_page=page.next_page,
    )


@router.get("/repository/{namespace}/{repository}/logs", response_model=LogList)
async def list_repository_logs(
    namespace: str,
    repository: str,
    principal: PrincipalDep,
    access: AccessDep,
    management: ManagementDep,
    starttime: str | None = Query(None, description=f"earliest day; {DATE_HELP}"),
    endtime: str | None = Query(None, description=f"latest day (included); {DATE_HELP}"),
    next_page: str | None = None,
) -> LogList:
    await check_repo(access, principal, namespace, repository, API_ADMIN)
    check_page_token(next_page, "before")
    page = await management.logs.repository_logs(
        namespace, repository, starttime, endtime, next_page
    )
    return log_list(page)


@router.get("/organization/{orgname}/logs", response_model=LogList)
async def list_organization_logs(
    orgname: str,
    principal: UserDep,
    access: AccessDep,
    management: ManagementDep,
    starttime: str | None = Query(None, description=f"earliest day; {DATE_HELP}"),
    endtime: str | None = Query(None, description=f"latest day (included); {DATE_HELP}"),
    next_page: str | None = None,
) -> LogList:
    await check_namespace_admin(access, principal, orgname, sc.ORG_ADMIN)
    check_page_token(next_page, "before")
    return log_list(await management.logs.organization_logs(orgname, starttime, endtime, next_page))
