"""GET /v2/<name>/tags/list with n/last pagination."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.api.deps import services
from moorage.api.registry.auth import require
from moorage.api.registry.common import API_VERSION, next_link, page_params
from moorage.auth.permissions import PULL


async def list_tags(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, name, PULL)
    svc = services(request)
    repo = await svc.repositories.get(name)
    n, last = page_params(request, default=None)
    tags, more = await svc.manifests.tag_page(repo, last, n)
    headers = dict(API_VERSION)
    if more and n:
        headers["Link"] = next_link(f"/v2/{name}/tags/list", n, tags[-1])
    return JSONResponse({"name": name, "tags": tags}, headers=headers)
