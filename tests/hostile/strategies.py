"""Shared hypothesis settings and strategies for the hostile-input tests.

Every property runs a bounded number of examples (``examples(n)``); set
``MOORAGE_HYPOTHESIS_SCALE=10`` to run ten times as many locally. No deadline: the machine is
shared, and a slow example is not a failure here.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("MOORAGE_HYPOTHESIS_SCALE", "1"))


def examples(n: int) -> settings:
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        derandomize=os.environ.get("MOORAGE_HYPOTHESIS_RANDOM") != "1",
    )


# Text an attacker may send: any code point, plus the ones that break parsers and paths.
NASTY = [
    "",
    ".",
    "..",
    "/",
    "\\",
    "\x00",
    "\n",
    "\r\n",
    "%2e%2e",
    "%2F",
    "..%2f",
    "²",
    "①",
    "٣",
    "\u202e",
    "\ufeff",
    "a" * 300,
    "sha256:",
    "bytes=",
    "-",
    "+",
    "$oauthtoken",
]
nasty_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=80),
    st.text(alphabet="abc0123456789._-/:+=%\n\x00²", max_size=80),
)
hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
digests = hex64.map(lambda h: f"sha256:{h}")
_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


@st.composite
def components(draw: st.DrawFn) -> str:
    """One path component of a repository name: alphanumerics joined by . _ __ or dashes."""
    parts = draw(st.lists(_alnum, min_size=1, max_size=3))
    seps = draw(st.lists(st.sampled_from([".", "_", "__", "-", "--"]), min_size=len(parts)))
    return "".join(p + s for p, s in zip(parts, [*seps[: len(parts) - 1], ""], strict=True))


names = st.lists(components(), min_size=2, max_size=4).map("/".join)
tags = st.tuples(st.sampled_from("abcXYZ019_"), st.text("abcXYZ019._-", max_size=20)).map("".join)

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPES = [
    OCI_MANIFEST,
    OCI_INDEX,
    "application/vnd.oci.artifact.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/json",
    "text/plain",
    "",
]


@st.composite
def descriptors(draw: st.DrawFn, media_type: str | None = None) -> dict[str, Any]:
    return {
        "mediaType": media_type or draw(st.sampled_from(MEDIA_TYPES[5:7])),
        "digest": draw(digests),
        "size": draw(st.integers(min_value=0, max_value=2**40)),
    }


@st.composite
def manifest_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed image manifest or index."""
    if draw(st.booleans()):
        return {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": draw(descriptors("application/vnd.oci.image.config.v1+json")),
            "layers": draw(st.lists(descriptors(), max_size=4)),
        }
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": draw(st.lists(descriptors(OCI_MANIFEST), max_size=4)),
    }


@st.composite
def mutated_manifests(draw: st.DrawFn) -> bytes:
    """A manifest with one field removed, retyped or replaced by hostile JSON, or raw bytes."""
    kind = draw(st.sampled_from(["valid", "mutated", "json", "bytes", "deep", "bignum"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=500, max_value=5000))
        return b'{"schemaVersion": 2, "manifests": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "bignum":
        return b'{"schemaVersion": 2, "layers": [], "config": {"size": 1' + b"0" * 5000 + b"}}"
    doc = draw(manifest_documents())
    if kind == "mutated":
        key = draw(st.sampled_from([*doc.keys(), "subject", "annotations", "artifactType"]))
        doc[key] = draw(json_values)
        for entry in doc.get("layers") or doc.get("manifests") or []:
            if isinstance(entry, dict) and draw(st.booleans()):
                entry[draw(st.sampled_from(["digest", "size", "mediaType"]))] = draw(json_values)
    return json.dumps(doc).encode()
