"""Exception → response mapping for both APIs: the OCI envelope under /v2/, problem JSON elsewhere.

Every /api/v1 error body carries ``detail``, ``error_message``, ``error_type``, ``title``,
``status``, ``type`` and ``message`` — the superset of Quay's three shapes — with the same text.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage import errors as e
from moorage.api.registry.common import API_VERSION
from moorage.api.registry.errors import error_body, handle_registry_error
from moorage.services.login_throttle import LoginThrottled

API_STATUS: tuple[tuple[type[e.ApiError], int], ...] = (
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.AuthenticationRequired, 401),
    (e.PermissionDenied, 403),
    (e.RepositoryNotNormal, 503),
    (e.ServiceReadOnly, 503),
    (e.InvalidRequest, 400),
)


def problem(
    request: Request,
    status: int,
    message: str,
    error_type: str,
    *,
    response_headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    body = {
        "detail": message,
        "error_message": message,
        "message": message,
        "error_type": error_type,
        "title": error_type,
        "type": f"{base}/api/v1/error/{error_type}",
        "status": status,
        **extra,
    }
    out = dict(response_headers or {})
    if status == 401:
        out["WWW-Authenticate"] = 'Bearer realm="moorage"'
    return JSONResponse(body, status_code=status, headers=out)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.ApiError)
    status = next((s for cls, s in API_STATUS if isinstance(exc, cls)), 400)
    extra = exc.detail if isinstance(exc.detail, dict) else {}
    return problem(request, status, exc.message, exc.error_type, **extra)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in {"body", "query", "path"})
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return problem(request, 400, "; ".join(parts) or "Invalid request", "invalid_request")


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith("/v2/"):
        code = "UNSUPPORTED" if exc.status_code == 405 else "NAME_UNKNOWN"
        message = "unsupported method" if exc.status_code == 405 else "no such endpoint"
        headers = {**API_VERSION, **(exc.headers or {})}
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)
    message = "Not Found" if exc.status_code == 404 else str(exc.detail)
    error_type = "not_found" if exc.status_code == 404 else "invalid_request"
    return problem(request, exc.status_code, message, error_type)


async def handle_storage_key(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/v2/"):
        return JSONResponse(
            error_body("NAME_INVALID", "invalid name or reference"),
            status_code=400,
            headers=API_VERSION,
        )
    return problem(request, 400, "Invalid name or reference", "invalid_request")


async def handle_registry_error_anywhere(request: Request, exc: Exception) -> Response:
    """Registry errors raised under /api/v1 (bad names, digests) become problem JSON there."""
    if request.url.path.startswith("/v2/"):
        return await handle_registry_error(request, exc)
    assert isinstance(exc, e.RegistryError)
    status = 404 if isinstance(exc, e.NameUnknown | e.ManifestUnknown | e.BlobUnknown) else 400
    error_type = "not_found" if status == 404 else "invalid_request"
    return problem(request, status, exc.message, error_type)


async def handle_login_throttled(request: Request, exc: Exception) -> Response:
    """429 with Retry-After: the OCI envelope (TOOMANYREQUESTS) under /v2/, problem JSON else."""
    assert isinstance(exc, LoginThrottled)
    headers = {"Retry-After": str(exc.retry_after)}
    if request.url.path.startswith("/v2/"):
        return JSONResponse(
            error_body("TOOMANYREQUESTS", exc.message, exc.detail),
            status_code=429,
            headers={**API_VERSION, **headers},
        )
    return problem(
        request, 429, exc.message, "too_many_requests", response_headers=headers, **exc.detail
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(e.RegistryError, handle_registry_error_anywhere)
    app.add_exception_handler(e.ApiError, handle_api_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(e.StorageKeyInvalid, handle_storage_key)
    app.add_exception_handler(LoginThrottled, handle_login_throttled)
