"""HEAD/GET/PUT/DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from moorage.api.deps import services
from moorage.api.registry.auth import require
from moorage.api.registry.common import API_VERSION
from moorage.auth.permissions import DELETE, PULL, PUSH
from moorage.errors import ManifestUnknown, PayloadTooLarge
from moorage.oci.digest import is_digest
from moorage.oci.mediatypes import accepts, parse_accept


async def get_manifest(request: Request) -> Response:
    name = request.path_params["name"]
    reference = request.path_params["reference"]
    await require(request, name, PULL)
    svc = services(request)
    repo = await svc.repositories.get(name)
    manifest = await svc.manifests.get(repo, reference)
    accepted = parse_accept(request.headers.getlist("accept"))
    if not is_digest(reference) and not accepts(accepted, manifest.media_type):
        raise ManifestUnknown(
            f"manifest {reference} is {manifest.media_type}, which the client does not accept"
        )
    headers = {
        **API_VERSION,
        "Content-Type": manifest.media_type,
        "Docker-Content-Digest": manifest.digest,
        "ETag": f'"{manifest.digest}"',
        "Content-Length": str(len(manifest.payload)),
    }
    if request.method == "HEAD":
        return Response(headers=headers)
    return Response(manifest.payload, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"manifest of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"manifest exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def put_manifest(request: Request) -> Response:
    name = request.path_params["name"]
    reference = request.path_params["reference"]
    await require(request, name, PULL, PUSH)
    svc = services(request)
    payload = await _read_body(request, svc.manifests.max_manifest_size)
    result = await svc.manifests.put(name, reference, payload, request.headers.get("content-type"))
    headers = {
        **API_VERSION,
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": str(result.digest),
        "Content-Length": "0",
    }
    if result.subject is not None:
        headers["OCI-Subject"] = str(result.subject)
    return Response(status_code=201, headers=headers)


async def delete_manifest(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, name, DELETE)
    svc = services(request)
    repo = await svc.repositories.get(name)
    await svc.manifests.delete(repo, request.path_params["reference"])
    return Response(status_code=202, headers={**API_VERSION, "Content-Length": "0"})
