"""Every /api/v1 route appears in the served OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_permission_matrix import api_routes

pytestmark = pytest.mark.anyio
UNDOCUMENTED = {"/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/oauth2-redirect"}


async def test_every_api_route_is_in_openapi(app: Any, client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    routes = [(m, p) for m, p in api_routes(app) if p not in UNDOCUMENTED]
    assert len(routes) > 40
    for method, path in routes:
        assert path in paths, f"{path} missing from OpenAPI"
        assert method.lower() in paths[path], f"{method} {path} missing from OpenAPI"
