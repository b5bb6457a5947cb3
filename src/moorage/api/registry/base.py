"""GET /v2/ — API version check."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.api.registry.auth import require_login
from moorage.api.registry.common import API_VERSION


async def get_base(request: Request) -> Response:
    await require_login(request)
    return JSONResponse({}, headers=API_VERSION)
