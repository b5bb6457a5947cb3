"""Route table for /v2/ and nothing else."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from moorage.api.registry import (
    base,
    blobs,
    catalog,
    manifests,
    referrers,
    tags,
    token,
    uploads,
)

NAME = "{name:path}"


def routes() -> list[BaseRoute]:
    return [
        Route("/v2/", base.get_base, methods=["GET"]),
        Route("/v2/auth", token.get_token, methods=["GET"]),
        Route("/v2/_catalog", catalog.list_catalog, methods=["GET"]),
        Route(f"/v2/{NAME}/blobs/uploads/", uploads.start_upload, methods=["POST"]),
        Route(
            f"/v2/{NAME}/blobs/uploads/{{upload_id}}",
            uploads.patch_upload,
            methods=["PATCH"],
        ),
        Route(f"/v2/{NAME}/blobs/uploads/{{upload_id}}", uploads.complete_upload, methods=["PUT"]),
        Route(f"/v2/{NAME}/blobs/uploads/{{upload_id}}", uploads.get_upload, methods=["GET"]),
        Route(f"/v2/{NAME}/blobs/uploads/{{upload_id}}", uploads.cancel_upload, methods=["DELETE"]),
        Route(f"/v2/{NAME}/blobs/{{digest}}", blobs.get_blob, methods=["GET", "HEAD"]),
        Route(f"/v2/{NAME}/blobs/{{digest}}", blobs.delete_blob, methods=["DELETE"]),
        Route(
            f"/v2/{NAME}/manifests/{{reference}}",
            manifests.get_manifest,
            methods=["GET", "HEAD"],
        ),
        Route(f"/v2/{NAME}/manifests/{{reference}}", manifests.put_manifest, methods=["PUT"]),
        Route(f"/v2/{NAME}/manifests/{{reference}}", manifests.delete_manifest, methods=["DELETE"]),
        Route(f"/v2/{NAME}/tags/list", tags.list_tags, methods=["GET"]),
        Route(f"/v2/{NAME}/referrers/{{digest}}", referrers.list_referrers, methods=["GET"]),
    ]
