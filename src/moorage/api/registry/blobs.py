"""HEAD/GET/DELETE /v2/<name>/blobs/<digest>."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from moorage.api.deps import services, settings
from moorage.api.registry.auth import require
from moorage.api.registry.common import API_VERSION, RangeUnsatisfiable, parse_range, prime
from moorage.api.registry.errors import range_not_satisfiable_response
from moorage.auth.permissions import DELETE, PULL
from moorage.errors import BlobUnknown, StorageError, StorageNotFound
from moorage.oci.digest import Digest

log = logging.getLogger(__name__)
# How long a presigned blob URL stays valid (a download must start within it).
REDIRECT_EXPIRES_SECONDS = 600


async def get_blob(request: Request) -> Response:
    name = request.path_params["name"]
    digest = Digest.parse(request.path_params["digest"])
    await require(request, name, PULL)
    svc = services(request)
    repo = await svc.repositories.get(name)
    info = await svc.blobs.stat(repo, digest)
    headers = {
        **API_VERSION,
        "Docker-Content-Digest": str(digest),
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
    }
    if request.method == "HEAD":
        return Response(headers={**headers, "Content-Length": str(info.size)})
    if settings(request).BLOB_REDIRECTS:
        redirect = await _redirect(request, digest)
        if redirect is not None:
            return redirect
    try:
        byte_range = parse_range(request.headers.get("range"), info.size)
    except RangeUnsatisfiable:
        return range_not_satisfiable_response(info.size)
    offset, length, status = 0, info.size, 200
    if byte_range is not None:
        offset, end = byte_range
        length, status = end - offset + 1, 206
        headers["Content-Range"] = f"bytes {offset}-{end}/{info.size}"
    try:
        body = await prime(svc.blobs.read(digest, offset, length))
    except StorageNotFound as exc:
        raise BlobUnknown(f"blob {digest} is missing from storage") from exc
    headers["Content-Length"] = str(length)
    return StreamingResponse(body, status_code=status, headers=headers)


async def delete_blob(request: Request) -> Response:
    name = request.path_params["name"]
    digest = Digest.parse(request.path_params["digest"])
    await require(request, name, DELETE)
    svc = services(request)
    repo = await svc.repositories.get(name)
    await svc.blobs.delete(repo, digest)
    return Response(status_code=202, headers={**API_VERSION, "Content-Length": "0"})


async def _redirect(request: Request, digest: Digest) -> Response | None:
    """307 to a presigned storage URL, or None when the driver offers none (or fails to)."""
    try:
        url = await services(request).blobs.redirect_url(digest, REDIRECT_EXPIRES_SECONDS)
    except StorageError:
        log.warning("could not presign blob %s; serving it directly", digest, exc_info=True)
        return None
    if url is None:
        return None
    return Response(
        status_code=307,
        headers={
            **API_VERSION,
            "Location": url,
            "Docker-Content-Digest": str(digest),
            "Cache-Control": "no-store",
            "Content-Length": "0",
        },
    )
