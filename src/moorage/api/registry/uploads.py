"""Blob upload sessions: POST (start, monolithic, mount), PATCH, PUT, GET, DELETE."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from moorage.api.deps import services
from moorage.api.registry.auth import require
from moorage.api.registry.common import API_VERSION, parse_content_range
from moorage.api.registry.errors import registry_error_response
from moorage.auth.permissions import PULL, PUSH
from moorage.errors import (
    DigestInvalid,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RegistryError,
    SizeInvalid,
)
from moorage.oci.digest import Digest
from moorage.services.repositories import RepoRef
from moorage.services.uploads import UploadStatus


def _body(request: Request) -> AsyncIterator[bytes] | None:
    """The request body stream, or None when the request carries no body."""
    length = request.headers.get("content-length")
    if length == "0" or (
        length is None and "chunked" not in request.headers.get("transfer-encoding", "")
    ):
        return None
    return request.stream()


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw and raw.isascii() and raw.isdigit() else None


def _refuse_oversized(request: Request, limit: int) -> None:
    """413 before reading a body whose declared length alone exceeds the largest blob."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(
            f"Content-Length {declared} exceeds the maximum blob size of {limit} bytes"
        )


def _upload_headers(name: str, status: UploadStatus) -> dict[str, str]:
    return {
        **API_VERSION,
        "Location": f"/v2/{name}/blobs/uploads/{status.id}",
        "Range": f"0-{max(status.size - 1, 0)}",
        "Docker-Upload-UUID": status.id,
        "Content-Length": "0",
    }


def _created(name: str, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={
            **API_VERSION,
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )


def _digest_param(request: Request) -> Digest:
    raw = request.query_params.get("digest")
    if not raw:
        raise DigestInvalid("the digest query parameter is required")
    return Digest.parse(raw)


async def start_upload(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, name, PULL, PUSH)
    svc = services(request)
    mount = request.query_params.get("mount")
    source = request.query_params.get("from")
    repo = await svc.repositories.get_or_create(name)
    if mount and source:
        digest = Digest.parse(mount)
        if await _mounted(request, repo, digest, source):
            return _created(name, digest)
    if "digest" in request.query_params:
        digest = _digest_param(request)
        _refuse_oversized(request, svc.uploads.max_blob_size)
        body = _body(request) or _empty()
        size = await svc.uploads.monolithic(repo, digest, body)
        _check_length(request, size)
        return _created(name, digest)
    status = await svc.uploads.start(repo)
    return Response(status_code=202, headers=_upload_headers(name, status))


async def _mounted(request: Request, repo: RepoRef, digest: Digest, source: str) -> bool:
    """Link ``digest`` from ``source`` into ``repo``; False (so the client gets an upload
    session, as the spec asks) when the source is invalid, unknown, not pullable or lacks it."""
    svc = services(request)
    try:
        await require(request, source, PULL)
        source_repo = await svc.repositories.find(source)
    except RegistryError:
        return False
    return source_repo is not None and await svc.blobs.mount(repo, digest, source_repo) is not None


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def _check_length(request: Request, received: int) -> None:
    declared = _declared_length(request)
    if declared is not None and declared != received:
        raise SizeInvalid(f"Content-Length is {declared} but {received} bytes were received")


async def patch_upload(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, name, PULL, PUSH)
    svc = services(request)
    repo = await svc.repositories.get(name)
    _refuse_oversized(request, svc.uploads.max_blob_size)
    start = _checked_range(request)
    upload_id = request.path_params["upload_id"]
    try:
        status = await svc.uploads.append(repo, upload_id, request.stream(), start)
    except RangeNotSatisfiable as exc:
        return _out_of_order(name, upload_id, exc)
    return Response(status_code=202, headers=_upload_headers(name, status))


def _checked_range(request: Request) -> int | None:
    """The start of the chunk's Content-Range, after checking it against Content-Length."""
    content_range = parse_content_range(request.headers.get("content-range"))
    if content_range is None:
        return None
    declared = _declared_length(request)
    if declared is not None and content_range[1] - content_range[0] + 1 != declared:
        raise SizeInvalid("Content-Range does not match Content-Length")
    return content_range[0]


def _out_of_order(name: str, upload_id: str, exc: RangeNotSatisfiable) -> Response:
    """416 with Range (added by the error table) and the Location to resume at."""
    return registry_error_response(exc, {"Location": f"/v2/{name}/blobs/uploads/{upload_id}"})


async def complete_upload(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, name, PULL, PUSH)
    svc = services(request)
    repo = await svc.repositories.get(name)
    digest = _digest_param(request)
    _refuse_oversized(request, svc.uploads.max_blob_size)
    upload_id = request.path_params["upload_id"]
    body = _body(request)
    start = _checked_range(request) if body is not None else None
    try:
        await svc.uploads.complete(repo, upload_id, digest, body, start)
    except RangeNotSatisfiable as exc:
        return _out_of_order(name, upload_id, exc)
    return _created(name, digest)


async def get_upload(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, name, PULL, PUSH)
    svc = services(request)
    repo = await svc.repositories.get(name)
    status = await svc.uploads.status(repo, request.path_params["upload_id"])
    return Response(status_code=204, headers=_upload_headers(name, status))


async def cancel_upload(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, name, PULL, PUSH)
    svc = services(request)
    repo = await svc.repositories.get(name)
    await svc.uploads.cancel(repo, request.path_params["upload_id"])
    return Response(status_code=204, headers={**API_VERSION, "Content-Length": "0"})
