"""Parse and validate image manifests and indexes; list the descriptors they reference."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from moorage.errors import ManifestInvalid
from moorage.oci import mediatypes as mt
from moorage.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: dict[str, Any] | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """What a stored manifest means to the registry."""

    media_type: str
    digest: Digest
    size: int
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_TYPES


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestInvalid(f"{where}: descriptor must be an object")
    media_type = raw.get("mediaType")
    digest = raw.get("digest")
    size = raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where}: mediaType is required")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where}: digest is required")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where}: size must be a non-negative integer")
    platform = raw.get("platform")
    annotations = raw.get("annotations")
    artifact_type = raw.get("artifactType")
    return Descriptor(
        media_type=media_type,
        digest=_digest(digest, where),
        size=size,
        platform=platform if isinstance(platform, dict) else None,
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        annotations=annotations if isinstance(annotations, dict) else None,
    )


def _digest(value: str, where: str) -> Digest:
    try:
        return Digest.parse(value)
    except Exception as exc:
        raise ManifestInvalid(f"{where}: invalid digest {value!r}") from exc


def _descriptor_list(doc: dict[str, Any], key: str, *, required: bool) -> tuple[Descriptor, ...]:
    raw = doc.get(key)
    if raw is None:
        if required:
            raise ManifestInvalid(f"{key} is required")
        return ()
    if not isinstance(raw, list):
        raise ManifestInvalid(f"{key} must be an array")
    return tuple(_descriptor(item, f"{key}[{i}]") for i, item in enumerate(raw))


def resolve_media_type(content_type: str | None, doc: dict[str, Any]) -> str:
    """The manifest's media type from the request header and the document's own field."""
    header = (content_type or "").split(";", 1)[0].strip().lower()
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestInvalid("mediaType must be a string")
    if header in mt.MANIFEST_TYPES:
        if body_type and body_type != header:
            raise ManifestInvalid(
                f"mediaType {body_type!r} in the manifest does not match Content-Type {header!r}"
            )
        return header
    if body_type in mt.MANIFEST_TYPES:
        return str(body_type)
    if doc.get("schemaVersion") == 1:
        raise ManifestInvalid("Docker schema 1 manifests are not supported")
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "layers" in doc and "config" in doc:
        return mt.OCI_MANIFEST
    raise ManifestInvalid(f"unsupported manifest media type {header or body_type!r}")


def parse_manifest(
    payload: bytes, content_type: str | None, algorithm: str = "sha256"
) -> ParsedManifest:
    """Validate ``payload`` as a manifest and describe what it references.

    ``algorithm`` names the digest the manifest is addressed by (the one a client pushed it by).
    """
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from exc
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ManifestInvalid("manifest contains a number too large to read") from exc
    except RecursionError as exc:
        raise ManifestInvalid("manifest is nested too deeply") from exc
    if not isinstance(doc, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    media_type = resolve_media_type(content_type, doc)
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ManifestInvalid("annotations must be an object")
    digest = Digest.of(payload, algorithm)
    if media_type in mt.INDEX_TYPES:
        children = _descriptor_list(doc, "manifests", required=True)
        return ParsedManifest(
            media_type=media_type,
            digest=digest,
            size=len(payload),
            blobs=tuple(d for d in children if d.media_type not in mt.MANIFEST_TYPES),
            children=tuple(d for d in children if d.media_type in mt.MANIFEST_TYPES),
            subject=subject,
            artifact_type=artifact_type or None,
            annotations=annotations,
        )
    if media_type == mt.OCI_ARTIFACT_MANIFEST:
        blobs = _descriptor_list(doc, "blobs", required=False)
    else:
        config = _descriptor(doc.get("config"), "config")
        blobs = (config, *_descriptor_list(doc, "layers", required=True))
        if not artifact_type and subject is not None:
            # OCI 1.1: a referrer whose artifactType is absent or empty is reported with its
            # config media type.
            artifact_type = config.media_type
    return ParsedManifest(
        media_type=media_type,
        digest=digest,
        size=len(payload),
        blobs=blobs,
        subject=subject,
        artifact_type=artifact_type or None,
        annotations=annotations,
    )
