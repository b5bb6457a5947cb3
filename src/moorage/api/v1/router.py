"""Mounts every /api/v1 router. Feature-gated routes are absent (404) when their flag is off."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from moorage.api.v1 import (
    logs,
    mirror_health,
    mirrors,
    notifications,
    organizations,
    permissions,
    repositories,
    robots,
    session,
    tags,
    user,
)
from moorage.api.v1.deps import no_nul_characters
from moorage.config import Settings


def router(settings: Settings) -> APIRouter:
    root = APIRouter(prefix="/api/v1", dependencies=[Depends(no_nul_characters)])
    root.include_router(session.router)
    root.include_router(user.router)
    root.include_router(robots.router)
    root.include_router(organizations.router)
    # Sub-resources of /repository/{namespace}/{repository} before the generic repository routes.
    root.include_router(tags.router)
    root.include_router(permissions.router)
    root.include_router(logs.router)
    if settings.FEATURE_REPO_MIRROR:
        root.include_router(mirror_health.router)
        root.include_router(mirrors.router)
        root.include_router(notifications.router)  # its events are all mirror events
        repositories.add_changestate(root)
    root.include_router(repositories.router)
    return root
