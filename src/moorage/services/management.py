"""Wire the /api/v1 management services together once per process."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.db.engine import Database
from moorage.services.accounts import AccountService
from moorage.services.logs import LogService
from moorage.services.organizations import OrganizationService
from moorage.services.permissions import PermissionService
from moorage.services.repo_cache import RepoCache
from moorage.services.repository_admin import RepositoryAdminService
from moorage.services.robots import RobotService
from moorage.services.tags import TagService


@dataclass(frozen=True, slots=True)
class ManagementServices:
    repositories: RepositoryAdminService
    organizations: OrganizationService
    robots: RobotService
    tags: TagService
    permissions: PermissionService
    logs: LogService

    @classmethod
    def build(
        cls, db: Database, accounts: AccountService, repo_cache: RepoCache | None = None
    ) -> ManagementServices:
        return cls(
            repositories=RepositoryAdminService(db, repo_cache),
            organizations=OrganizationService(db, accounts),
            robots=RobotService(db, accounts),
            tags=TagService(db),
            permissions=PermissionService(db),
            logs=LogService(db),
        )
