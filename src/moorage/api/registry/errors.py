"""The table of OCI error codes and HTTP statuses, and the spec's error envelope."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage import errors as e
from moorage.services.manifests import ManifestInUse

# Most specific class first: the first isinstance match decides the status.
STATUS_TABLE: tuple[tuple[type[e.RegistryError], int], ...] = (
    (e.RangeNotSatisfiable, 416),
    (e.PayloadTooLarge, 413),
    (ManifestInUse, 409),
    (e.ReadOnlyError, 405),
    (e.BlobUnknown, 404),
    (e.BlobUploadUnknown, 404),
    (e.ManifestUnknown, 404),
    (e.NameUnknown, 404),
    (e.BlobUploadInvalid, 400),
    (e.DigestInvalid, 400),
    (e.ManifestBlobUnknown, 400),
    (e.ManifestInvalid, 400),
    (e.NameInvalid, 400),
    (e.SizeInvalid, 400),
    (e.Unauthorized, 401),
    (e.Denied, 403),
    (e.Unsupported, 405),
    (e.TooManyRequests, 429),
)


def status_for(exc: e.RegistryError) -> int:
    for cls, status in STATUS_TABLE:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "detail": detail}]}


def registry_error_response(
    exc: e.RegistryError, headers: dict[str, str] | None = None
) -> Response:
    status = status_for(exc)
    out = {"Docker-Distribution-API-Version": "registry/2.0", **(headers or {})}
    if isinstance(exc, e.RangeNotSatisfiable) and isinstance(exc.detail, int):
        out["Range"] = f"0-{max(exc.detail - 1, 0)}"
    detail = exc.detail if not isinstance(exc, e.RangeNotSatisfiable) else None
    return JSONResponse(error_body(exc.code, exc.message, detail), status_code=status, headers=out)


def range_not_satisfiable_response(size: int) -> Response:
    """416 for a blob GET whose Range lies past the end (RFC 9110 15.5.17), as a spec envelope."""
    message = f"requested range not satisfiable: the blob is {size} bytes"
    return JSONResponse(
        error_body("SIZE_INVALID", message, {"size": size}),
        status_code=416,
        headers={
            "Docker-Distribution-API-Version": "registry/2.0",
            "Content-Range": f"bytes */{size}",
            "Accept-Ranges": "bytes",
        },
    )


async def handle_registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.RegistryError)
    headers = getattr(exc, "headers", None)
    return registry_error_response(exc, headers)
