"""Media-type constants and Accept negotiation."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST, OCI_ARTIFACT_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_TYPES


def parse_accept(header_values: list[str]) -> set[str]:
    """All media types named by one or more Accept headers, without parameters."""
    types: set[str] = set()
    for value in header_values:
        for part in value.split(","):
            media_type = part.split(";", 1)[0].strip().lower()
            if media_type:
                types.add(media_type)
    return types


def accepts(accepted: set[str], media_type: str) -> bool:
    """Whether a client that sent ``accepted`` can take ``media_type`` (empty = anything)."""
    if not accepted or "*/*" in accepted or "application/*" in accepted:
        return True
    if media_type in accepted:
        return True
    # Clients that accept plain JSON get whatever JSON manifest we have.
    return "application/json" in accepted
