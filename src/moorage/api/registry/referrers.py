"""GET /v2/<name>/referrers/<digest> (OCI 1.1)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.api.deps import services
from moorage.api.registry.auth import require
from moorage.api.registry.common import API_VERSION
from moorage.auth.permissions import PULL
from moorage.oci.digest import Digest
from moorage.oci.mediatypes import OCI_INDEX


async def list_referrers(request: Request) -> Response:
    name = request.path_params["name"]
    subject = Digest.parse(request.path_params["digest"])
    await require(request, name, PULL)
    svc = services(request)
    # A registry with the referrers API never answers 404 here (clients would fall back to the
    # referrers tag schema): a repository that does not exist simply has no referrers.
    repo = await svc.repositories.find(name)
    artifact_type = request.query_params.get("artifactType") or None
    # No stored artifact type holds a NUL (PostgreSQL cannot even compare with one).
    descriptors = []
    if repo is not None and not (artifact_type is not None and "\x00" in artifact_type):
        descriptors = await svc.manifests.referrers(repo, subject, artifact_type)
    headers = {**API_VERSION}
    if artifact_type:
        headers["OCI-Filters-Applied"] = "artifactType"
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [d.to_json() for d in descriptors],
    }
    return JSONResponse(body, headers=headers, media_type=OCI_INDEX)
