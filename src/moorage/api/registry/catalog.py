"""GET /v2/_catalog with n/last pagination."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.api.deps import services
from moorage.api.registry.auth import authenticate
from moorage.api.registry.common import API_VERSION, next_link, page_params
from moorage.auth.permissions import PULL
from moorage.services.access import AccessService

DEFAULT_PAGE = 100


async def list_catalog(request: Request) -> Response:
    principal = await authenticate(request)
    svc = services(request)
    n, last = page_params(request, default=DEFAULT_PAGE)
    assert n is not None
    if n == 0:
        return JSONResponse({"repositories": []}, headers=API_VERSION)
    # Decided live for the caller's identity: a bearer token names the catalog, not each repo.
    access: AccessService = request.app.state.access_service
    visible: list[str] = []
    cursor = last
    # Only repositories the caller may pull are listed; scan forward until the page is full.
    while len(visible) <= n:
        batch = await svc.repositories.catalog(cursor, max(n, 1) * 2)
        if not batch:
            break
        for repo in batch:
            if PULL in await access.allowed(principal, repo, frozenset({PULL})):
                visible.append(repo)
        cursor = batch[-1]
    headers = dict(API_VERSION)
    if len(visible) > n:
        visible = visible[:n]
        headers["Link"] = next_link("/v2/_catalog", n, visible[-1])
    return JSONResponse({"repositories": visible}, headers=headers)
