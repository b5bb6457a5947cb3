"""create_app(settings): build the ASGI application with explicit wiring, no globals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage import __version__
from moorage.api.registry.common import API_VERSION
from moorage.api.registry.errors import error_body, handle_registry_error
from moorage.api.registry.router import routes as registry_routes
from moorage.auth.permissions import AccessController, OpenAccess
from moorage.config import Settings
from moorage.db.engine import Database
from moorage.errors import RegistryError, StorageKeyInvalid
from moorage.services.registry import RegistryServices
from moorage.storage.base import StorageDriver
from moorage.storage.factory import build_driver

log = logging.getLogger(__name__)


class ClosedAccess:
    """Until identity is configured, nobody may do anything."""

    async def authenticate(self, headers: object) -> object:
        from moorage.auth.permissions import ANONYMOUS  # noqa: PLC0415

        return ANONYMOUS

    async def allowed_actions(
        self, principal: object, repository: str, actions: frozenset[str]
    ) -> frozenset[str]:
        return frozenset()


def build_access(settings: Settings) -> AccessController:
    if settings.INSECURE_OPEN_REGISTRY_NO_AUTH:
        log.warning("INSECURE_OPEN_REGISTRY_NO_AUTH is on: anyone may pull and push anything")
        return OpenAccess()
    return ClosedAccess()  # type: ignore[return-value]


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    storage: StorageDriver | None = None,
) -> FastAPI:
    """The Moorage ASGI app. Resources are created in the lifespan unless injected."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database(settings.database_url, pool_size=settings.DB_POOL_SIZE)
        driver = storage or build_driver(settings)
        app.state.db = db
        app.state.storage = driver
        app.state.services = RegistryServices.build(settings, db, driver)
        app.state.access = build_access(settings)
        try:
            yield
        finally:
            if storage is None:
                await driver.close()
            if database is None:
                await db.dispose()

    app = FastAPI(
        title="Moorage",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/v1/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.router.routes.extend(registry_routes())
    app.add_exception_handler(RegistryError, handle_registry_error)
    app.add_exception_handler(StorageKeyInvalid, _storage_key_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    return app


async def _storage_key_invalid(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        error_body("NAME_INVALID", "invalid name or reference"),
        status_code=400,
        headers=API_VERSION,
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith("/v2/"):
        code = "UNSUPPORTED" if exc.status_code == 405 else "NAME_UNKNOWN"
        message = "unsupported method" if exc.status_code == 405 else "no such endpoint"
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=API_VERSION
        )
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
