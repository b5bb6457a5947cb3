"""Mirror health and registry capabilities (Quay §1.7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from moorage.api.v1.deps import (
    AccountsDep,
    PrincipalDep,
    SettingsDep,
    require_scope,
    require_superuser,
)
from moorage.auth import scopes as sc
from moorage.db.models import AccountKind
from moorage.errors import AuthenticationRequired, PermissionDenied
from moorage.services.mirror_health import MirrorHealthService
from moorage.services.mirror_rules import VALID_ARCHITECTURES

router = APIRouter(tags=["mirror"])
NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate"}


def service(request: Request) -> MirrorHealthService:
    value: MirrorHealthService = request.app.state.mirror_health
    return value


def _answer(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=200 if body["healthy"] else 503, headers=NO_CACHE)


@router.get("/repository/mirror/health", summary="getRepositoryMirrorHealth")
async def repository_mirror_health(
    request: Request,
    principal: PrincipalDep,
    accounts: AccountsDep,
    namespace: str | None = None,
    detailed: bool = False,
    limit: int = Query(100),
    offset: int = Query(0, ge=0),
) -> JSONResponse:
    if principal.is_anonymous or principal.account_id is None:
        raise AuthenticationRequired("Requires authentication")
    if principal.kind == "robot":
        raise PermissionDenied("Unauthorized")
    if namespace is None:
        require_superuser(principal)
    else:
        require_scope(principal, sc.USER_READ)
        owner = await accounts.get(namespace)
        if not (principal.superuser and principal.has_scope(sc.SUPER_USER)):
            if owner.kind == AccountKind.ORGANIZATION:
                orgs = await accounts.organizations_of(principal.account_id)
                if not any(org.id == owner.id for org, _ in orgs):
                    raise PermissionDenied("Unauthorized")
            elif owner.username != principal.name:
                raise PermissionDenied("Unauthorized")
    body = await service(request).report(
        namespace, detailed=detailed, limit=min(max(limit, 1), 1000), offset=offset, identify=True
    )
    return _answer(body)


@router.get("/superuser/mirror/health", summary="getSuperUserRepositoryMirrorHealth")
async def superuser_mirror_health(request: Request, principal: PrincipalDep) -> JSONResponse:
    if principal.is_anonymous:
        raise AuthenticationRequired("Requires authentication")
    require_superuser(principal)
    body = await service(request).report(None, detailed=False, limit=100, offset=0, identify=False)
    return _answer(body)


@router.get("/registry/capabilities", summary="getRegistryCapabilities")
async def registry_capabilities(settings: SettingsDep) -> dict[str, Any]:
    sparse = settings.FEATURE_SPARSE_INDEX
    return {
        "sparse_manifests": {
            "supported": sparse,
            "required_architectures": [],
            "optional_architectures_allowed": sparse,
        },
        "mirror_architectures": sorted(VALID_ARCHITECTURES),
    }
