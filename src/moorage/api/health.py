"""GET /health/instance and /health/endtoend: unauthenticated, in Quay's response shape.

    {"data": {"services": {"process": true, "database": true, "storage": true}},
     "status_code": 200}

200 when every service is healthy, 503 otherwise (same body shape). Meant for load balancers
(instance) and monitoring (endtoend); see docs/operations.md.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from moorage.services.health import HealthService

NO_CACHE = {"Cache-Control": "no-store"}


def _answer(services: dict[str, bool]) -> Response:
    status = 200 if all(services.values()) else 503
    return JSONResponse(
        {"data": {"services": services}, "status_code": status},
        status_code=status,
        headers=NO_CACHE,
    )


def _health(request: Request) -> HealthService:
    value: HealthService = request.app.state.health
    return value


async def instance(request: Request) -> Response:
    return _answer(await _health(request).instance())


async def endtoend(request: Request) -> Response:
    return _answer(await _health(request).endtoend())


def routes() -> list[BaseRoute]:
    return [
        Route("/health/instance", instance, methods=["GET"], include_in_schema=False),
        Route("/health/endtoend", endtoend, methods=["GET"], include_in_schema=False),
    ]
