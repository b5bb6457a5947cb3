"""Wire the /api/v1 management services together once per process."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.db.engine import Database
from moorage.services.repository_admin import RepositoryAdminService


@dataclass(frozen=True, slots=True)
class ManagementServices:
    repositories: RepositoryAdminService

    @classmethod
    def build(cls, db: Database) -> ManagementServices:
        return cls(repositories=RepositoryAdminService(db))
