"""Property-based tests (hypothesis) of every parser that sees client input (issue #6 item 3).

Each parser, fed anything, either accepts a value that is exactly what the grammar allows or
refuses it with its own domain error — never another exception (which would be a 500).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import uuid
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.api.registry.auth import basic_username
from moorage.api.registry.common import RangeUnsatisfiable, parse_content_range, parse_range
from moorage.api.registry.token import parse_scope
from moorage.auth import sessions
from moorage.errors import (
    BlobUploadInvalid,
    DigestInvalid,
    InvalidRequest,
    ManifestInvalid,
    NameInvalid,
    StorageKeyInvalid,
)
from moorage.oci.digest import Digest
from moorage.oci.manifest import parse_manifest
from moorage.oci.mediatypes import accepts, parse_accept
from moorage.oci.reference import TagInvalid, split_repository, validate_tag
from moorage.services.access import parse_basic
from moorage.services.accounts import ROBOT_SHORT_RE, validate_username
from moorage.services.login_throttle import LoginThrottle
from moorage.storage import paths
from moorage.storage.filesystem import FilesystemDriver
from tests.hostile.strategies import (
    MEDIA_TYPES,
    components,
    digests,
    examples,
    manifest_documents,
    mutated_manifests,
    names,
    nasty_text,
    tags,
)

SPEC_NAME = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)+"
)
SPEC_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- digests -------------------------------------------------------------------------------------


@examples(400)
@given(st.one_of(nasty_text, digests, digests.map(lambda d: d + "\n"), digests.map(str.upper)))
def test_digest_parse_accepts_exactly_the_grammar(value: str) -> None:
    try:
        digest = Digest.parse(value)
    except DigestInvalid:
        return
    assert str(digest) == value  # nothing dropped, nothing normalised
    assert digest.algorithm in {"sha256", "sha512"}
    assert re.fullmatch(r"[0-9a-f]+", digest.hex)
    assert len(digest.hex) == {"sha256": 64, "sha512": 128}[digest.algorithm]


@examples(100)
@given(st.binary(max_size=256))
def test_digest_of_round_trips(data: bytes) -> None:
    digest = Digest.of(data)
    assert Digest.parse(str(digest)) == digest
    assert digest.hex == hashlib.sha256(data).hexdigest()


# --- repository names and tags --------------------------------------------------------------------


@examples(400)
@given(st.one_of(nasty_text, names, names.map(lambda n: n + "\n"), names.map(lambda n: "../" + n)))
def test_repository_names_follow_the_spec_grammar(value: str) -> None:
    try:
        namespace, name = split_repository(value)
    except NameInvalid:
        return
    assert f"{namespace}/{name}" == value
    assert SPEC_NAME.fullmatch(value)
    assert len(value) <= 255
    assert ".." not in value.split("/")
    assert not CONTROL.search(value)


@examples(300)
@given(st.one_of(nasty_text, tags, tags.map(lambda t: t + "\n")))
def test_tags_follow_the_spec_grammar(value: str) -> None:
    try:
        assert validate_tag(value) == value
    except TagInvalid:
        return
    assert SPEC_TAG.fullmatch(value)
    assert not CONTROL.search(value)


@examples(300)
@given(st.one_of(nasty_text, components(), components().map(lambda n: n + "\n")))
def test_account_and_robot_names_have_no_control_characters(value: str) -> None:
    try:
        validate_username(value)
    except InvalidRequest:
        pass
    else:
        assert re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", value)
        assert 2 <= len(value) <= 255
    if ROBOT_SHORT_RE.match(value):
        assert re.fullmatch(r"[a-z][a-z0-9_]{1,254}", value)


# --- storage keys and upload ids -----------------------------------------------------------------


@examples(400)
@given(
    st.one_of(
        nasty_text,
        st.lists(nasty_text, min_size=1, max_size=4).map("/".join),
        digests.map(lambda d: paths.blob_key(Digest.parse(d))),
    )
)
def test_storage_keys_never_leave_the_root(value: str) -> None:
    try:
        key = paths.validate_key(value)
    except StorageKeyInvalid:
        return
    assert key == value
    parts = PurePosixPath(key).parts
    assert "/".join(parts) == key  # no empty segment, no leading or trailing slash
    assert not any(p in {".", ".."} or p.startswith(".") for p in parts)
    assert not CONTROL.search(key)
    assert re.fullmatch(r"[A-Za-z0-9._/-]+", key)


def test_filesystem_driver_refuses_what_paths_refuse(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path / "root")
    for key in ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a\n", "a\x00", ".hidden"]:
        with pytest.raises(StorageKeyInvalid):
            driver._path(key)
    assert driver._path("blobs/sha256/ab/x").is_relative_to(tmp_path / "root")


@examples(300)
@given(st.one_of(nasty_text, st.uuids().map(str), st.uuids().map(lambda u: str(u) + "\n")))
def test_upload_ids_are_canonical_uuids(value: str) -> None:
    if not paths.is_upload_id(value):
        with pytest.raises(StorageKeyInvalid):
            paths.upload_prefix(value)
        return
    assert str(uuid.UUID(value)) == value
    assert paths.upload_prefix(value) == f"uploads/{value}"
    key = paths.upload_chunk_key(value, 3, "abc")
    assert paths.validate_key(key) == key


# --- manifests ------------------------------------------------------------------------------------


@examples(300)
@given(mutated_manifests(), st.sampled_from([None, *MEDIA_TYPES]))
def test_manifest_parsing_only_fails_with_manifest_invalid(
    payload: bytes, media: str | None
) -> None:
    try:
        parsed = parse_manifest(payload, media)
    except ManifestInvalid:
        return
    assert parsed.digest == Digest.of(payload)
    assert parsed.size == len(payload)
    doc = json.loads(payload)
    assert doc["schemaVersion"] == 2
    for descriptor in (*parsed.blobs, *parsed.children):
        assert descriptor.size >= 0
        assert isinstance(descriptor.size, int)


@examples(150)
@given(manifest_documents())
def test_valid_manifests_list_every_descriptor(doc: dict[str, object]) -> None:
    payload = json.dumps(doc).encode()
    parsed = parse_manifest(payload, str(doc["mediaType"]))
    listed = [str(d.digest) for d in (*parsed.blobs, *parsed.children)]
    layers = doc.get("layers")
    if isinstance(layers, list):
        config = doc["config"]
        assert isinstance(config, dict)
        expected = [config["digest"], *(layer["digest"] for layer in layers)]
    else:
        manifests = doc["manifests"]
        assert isinstance(manifests, list)
        expected = [m["digest"] for m in manifests]
    assert listed == expected


# --- headers: Content-Range, Range, Accept, Authorization, scope, session cookie -----------------


@examples(400)
@given(
    st.one_of(
        nasty_text,
        st.tuples(st.integers(0, 2**70), st.integers(0, 2**70)).map(lambda r: f"{r[0]}-{r[1]}"),
        st.sampled_from(["bytes=0-5", "bytes 0-5/*", "0-", "-5", "²-3", "0-①", "1_0-20", " 0-1"]),
    )
)
def test_content_range_is_parsed_or_refused(value: str) -> None:
    try:
        parsed = parse_content_range(value)
    except BlobUploadInvalid:
        return
    if not value:
        assert parsed is None
        return
    assert parsed is not None
    start, end = parsed
    assert 0 <= start <= end
    assert f"{start}-{end}" in value.replace(" ", "")


@examples(400)
@given(
    st.one_of(
        nasty_text,
        st.tuples(st.integers(0, 300), st.integers(0, 300)).map(lambda r: f"bytes={r[0]}-{r[1]}"),
        st.integers(0, 300).map(lambda n: f"bytes=-{n}"),
        st.integers(0, 300).map(lambda n: f"bytes={n}-"),
        st.sampled_from(["bytes=²-3", "bytes=0-①", "bytes=-", "bytes=1-2,3-4"]),
    ),
    st.integers(0, 200),
)
def test_range_is_within_the_blob_or_unsatisfiable(value: str, size: int) -> None:
    try:
        parsed = parse_range(value, size)
    except RangeUnsatisfiable:
        return
    if parsed is not None:
        start, end = parsed
        assert 0 <= start <= end < size


@examples(200)
@given(st.lists(nasty_text, max_size=4), st.sampled_from(MEDIA_TYPES))
def test_accept_parsing_never_fails(values: list[str], media_type: str) -> None:
    accepted = parse_accept(values)
    assert all(t == t.strip().lower() and t for t in accepted)
    assert isinstance(accepts(accepted, media_type), bool)


@examples(300)
@given(
    st.one_of(
        nasty_text,
        st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
        st.tuples(nasty_text, nasty_text).map(
            lambda t: base64.b64encode(f"{t[0]}:{t[1]}".encode()).decode()
        ),
    )
)
def test_basic_credentials_parse_or_are_refused(value: str) -> None:
    parsed = parse_basic(value)
    if parsed is not None:
        username, password = parsed
        decoded = base64.b64decode(value, validate=True).decode()
        assert decoded == f"{username}:{password}"
        assert ":" not in username
    assert basic_username("Basic " + value) == (parsed[0] if parsed else "")
    assert basic_username("Bearer " + value) is None


@examples(200)
@given(nasty_text)
def test_scope_parsing_never_fails(value: str) -> None:
    parsed = parse_scope(value)
    if parsed is not None:
        kind, name, actions = parsed
        assert kind
        assert name
        assert all(actions)


@examples(300)
@given(
    st.one_of(
        nasty_text,
        st.tuples(nasty_text, nasty_text, nasty_text).map(lambda t: f"v1:{t[0]}:{t[1]}:{t[2]}:m"),
        st.sampled_from(["v1:²:alice:99999999999:m", "v1:1:alice:²:m", "v1:\u0661:alice:1:m"]),
    )
)
def test_session_cookies_parse_or_are_refused(value: str) -> None:
    now = 1_700_000_000
    claims = sessions.peek(value, now)
    if claims is not None:
        assert now < claims.expires <= now + sessions.SESSION_SECONDS
        assert claims.username
    assert sessions.verify("key", value, "fingerprint", now) is None  # never signed by us
    assert not sessions.csrf_valid("key", value, value or None)


# --- the login throttle --------------------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.sampled_from(["fail", "succeed", "tick"]),
        st.sampled_from(["alice", "bob", "$oauthtoken", None, ""]),
        st.sampled_from(["10.0.0.1", "10.0.0.2", None]),
        st.integers(0, 400),
    ),
    max_size=60,
)


@examples(200)
@given(operations)
def test_login_throttle_bounds_and_never_holds_back_a_fresh_success(
    ops: list[tuple[str, str | None, str | None, int]],
) -> None:
    asyncio.run(_replay_logins(ops))


async def _replay_logins(ops: list[tuple[str, str | None, str | None, int]]) -> None:
    now = [0.0]
    limiter = LoginThrottle(3, 5, 120, 600, clock=lambda: now[0])
    for op, user, address, seconds in ops:
        if op == "fail":
            await limiter.failed(user, address)
        elif op == "succeed":
            await limiter.succeeded(user, address)
            if user and user != "$oauthtoken" and address:
                assert await limiter.retry_after(user, address) == 0
        else:
            now[0] += seconds
        assert 0 <= await limiter.retry_after(user, address) <= 120
