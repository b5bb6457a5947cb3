"""Path traversal attempts in repository names, references, digests, upload ids and storage keys
(issue #6 item 3), sent with raw paths (no client-side ``..`` clean-up) by a caller who may push.

Every attempt must be refused with a 4xx in the documented error shape; afterwards storage holds
only keys of the documented layout, nothing appeared outside the storage root, and no repository,
tag or account was created under a malformed name.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from moorage.db.models import Account, Repository, Tag
from moorage.errors import StorageKeyInvalid
from moorage.oci.reference import NAME_RE, TAG_RE
from moorage.services.accounts import USERNAME_RE
from moorage.storage.base import StorageDriver
from tests.api.conftest import World
from tests.hostile.rawasgi import error_shape_problems, send

pytestmark = pytest.mark.anyio

BLOB = b"traversal canary blob"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
EVIL_NAMES = [
    "..",
    "../..",
    "acme/..",
    "acme/../../etc",
    "../acme/app",
    "acme/./app",
    "acme//app",
    "acme/app/",
    "/acme/app",
    "%2e%2e/%2e%2e/etc",
    "acme/%2e%2e",
    "acme%2F..%2F..%2Fetc",
    "acme/app%00",
    "acme/app%0A",
    "acme/app%0D%0Ax",
    "acme/.app",
    "acme/app..",
    "acme/a%5C..%5Cb",
    "ACME/app",
    "acme/" + "a" * 300,
    "acme/%E2%80%AEapp",
]
EVIL_SEGMENTS = [
    "..",
    "%2e%2e",
    "..%2F..%2Fetc",
    ".",
    "%00",
    "a%00b",
    "a%0A",
    "a%0D%0A",
    "a%2Fb",
    "a%5C..",
    ".hidden",
    "acme+..",
    "acme+bot%0A",
    "%E2%80%AE",
    "a" * 300,
]
EVIL_REFERENCES = [
    "..",
    "%2e%2e",
    "..%2F..%2Fetc",
    "latest%0A",
    "latest%00",
    "lat%2Fest",
    ".hidden",
    "-dash",
    "a" * 129,
]
EVIL_DIGESTS = [
    "sha256:..",
    "sha256:../../../etc/passwd",
    "sha256:..%2F..%2F..%2Fetc%2Fpasswd",
    "sha256%3A..%2F..",
    "..%2Fblobs%2Fsha256",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 64 + "%0A",
    "sha256:" + "a" * 64 + "%00",
    "sha256:" + "g" * 64,
    "md5:" + "a" * 32,
    "sha512:" + "../" * 42 + "aa",
    "sha256:%2e%2e",
]
EVIL_UPLOAD_IDS = [
    "..",
    "%2e%2e",
    "..%2F..%2Fblobs",
    "..%2F..%2F..%2Fetc",
    "00000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-000000000000%0A",
    "00000000-0000-0000-0000-00000000000G",
    "00000000-0000-0000-0000-000000000000%2F..",
    "ABCDEF00-0000-0000-0000-000000000000",
    "uploads",
    "%00",
]
LAYOUT = re.compile(
    r"(blobs/(sha256/[0-9a-f]{2}/[0-9a-f]{64}|sha512/[0-9a-f]{2}/[0-9a-f]{128})"
    r"|uploads/[0-9a-f-]{36}/\d{8}-[0-9a-z]+)"
)


def oauth(world: World, user: str = "alice") -> list[tuple[str, str]]:
    raw = base64.b64encode(f"$oauthtoken:{world.tokens[user]}".encode()).decode()
    return [("authorization", f"Basic {raw}")]


def files_outside_storage(root: Path, storage_root: Path | None) -> set[str]:
    found = set()
    for path in root.rglob("*"):
        if storage_root is not None and (path == storage_root or storage_root in path.parents):
            continue
        if path.is_file() and not path.name.startswith("moorage.db"):
            found.add(path.relative_to(root).as_posix())
    return found


def storage_root(world: World) -> Path | None:
    entry = world.app.state.settings.storage_entry
    return Path(entry[1]["storage_path"]) if entry[0] == "LocalStorage" else None


def requests_for(world: World) -> list[tuple[str, str, bytes]]:
    """(method, raw target, body) for every hostile path segment on every /v2 and /api/v1 route."""
    out: list[tuple[str, str, bytes]] = []
    for name in EVIL_NAMES:
        out += [
            ("GET", f"/v2/{name}/manifests/latest", b""),
            ("PUT", f"/v2/{name}/manifests/latest", b"{}"),
            ("GET", f"/v2/{name}/tags/list", b""),
            ("POST", f"/v2/{name}/blobs/uploads/", b""),
            ("POST", f"/v2/{name}/blobs/uploads/?digest={BLOB_DIGEST}", BLOB),
            ("POST", f"/v2/acme/app/blobs/uploads/?mount={BLOB_DIGEST}&from={name}", b""),
            ("GET", f"/v2/{name}/blobs/{BLOB_DIGEST}", b""),
            ("GET", f"/v2/auth?scope=repository:{name}:pull,push", b""),
        ]
    for segment in EVIL_SEGMENTS:
        out += [
            ("GET", f"/api/v1/repository/{segment}/app", b""),
            ("GET", f"/api/v1/repository/acme/{segment}", b""),
            ("GET", f"/api/v1/repository/acme/{segment}/tag/", b""),
            ("DELETE", f"/api/v1/repository/acme/{segment}", b""),
            ("PUT", f"/api/v1/user/robots/{segment}", b"{}"),
            ("GET", f"/api/v1/organization/{segment}/robots", b""),
            ("PUT", f"/api/v1/organization/acme/robots/{segment}", b"{}"),
            ("PUT", f"/api/v1/repository/acme/app/permissions/user/{segment}", b'{"role":"read"}'),
            ("GET", f"/api/v1/repository/acme/app/mirror/runs?limit={segment}", b""),
        ]
    for reference in EVIL_REFERENCES:
        out += [
            ("GET", f"/v2/acme/app/manifests/{reference}", b""),
            ("PUT", f"/v2/acme/app/manifests/{reference}", world_manifest(world)),
            ("DELETE", f"/v2/acme/app/manifests/{reference}", b""),
            ("PUT", f"/api/v1/repository/acme/app/tag/{reference}", b""),
        ]
    for digest in EVIL_DIGESTS:
        out += [
            ("GET", f"/v2/acme/app/blobs/{digest}", b""),
            ("HEAD", f"/v2/acme/app/blobs/{digest}", b""),
            ("DELETE", f"/v2/acme/app/blobs/{digest}", b""),
            ("GET", f"/v2/acme/app/manifests/{digest}", b""),
            ("DELETE", f"/v2/acme/app/manifests/{digest}", b""),
            ("GET", f"/v2/acme/app/referrers/{digest}", b""),
            ("POST", f"/v2/acme/app/blobs/uploads/?digest={digest}", BLOB),
            ("POST", f"/v2/acme/app/blobs/uploads/?mount={digest}&from=acme/app", b""),
        ]
    for upload in EVIL_UPLOAD_IDS:
        out += [
            ("GET", f"/v2/acme/app/blobs/uploads/{upload}", b""),
            ("PATCH", f"/v2/acme/app/blobs/uploads/{upload}", BLOB),
            ("PUT", f"/v2/acme/app/blobs/uploads/{upload}?digest={BLOB_DIGEST}", BLOB),
            ("DELETE", f"/v2/acme/app/blobs/uploads/{upload}", b""),
        ]
    return out


def world_manifest(world: World) -> bytes:
    return b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", ' + (
        b'"manifests": []}'
    )


async def test_traversal_attempts_are_refused(world: World) -> None:
    root = Path(world.app.state.settings.DATA_DIR).parent
    storage = storage_root(world)
    before = files_outside_storage(root, storage)
    problems = []
    requests = requests_for(world)
    for method, target, body in requests:
        headers = oauth(world)
        if method in {"PUT", "PATCH"} and "/api/v1/" not in target:
            headers.append(("content-type", "application/vnd.oci.image.index.v1+json"))
        if "/api/v1/" in target and body:
            headers.append(("content-type", "application/json"))
        response = await send(world.app, method, target, headers, body)
        path = target.split("?", 1)[0]
        if response.status >= 500 or (
            response.status < 400 and not _benign(method, target, response.headers)
        ):
            problems.append(f"{method} {target} -> {response.status} {response.text[:200]}")
        shape = error_shape_problems(path, response.status, response.body)
        if shape and method != "HEAD":
            problems.append(f"{method} {target}: {shape}")
    assert not problems, "\n".join(problems)
    assert len(requests) > 300

    # Nothing was written outside the storage root; storage holds only the documented layout.
    assert files_outside_storage(root, storage) == before
    keys = [k for prefix in ("blobs", "uploads") for k in await _keys(world, prefix)]
    assert keys
    assert all(LAYOUT.fullmatch(k) for k in keys), keys
    async with world.db.transaction(readonly=True) as session:
        repos = (await session.execute(select(Repository))).scalars().all()
        tags = (await session.execute(select(Tag.name))).scalars().all()
        accounts = (await session.execute(select(Account.username))).scalars().all()
    assert all(NAME_RE.match(f"{r.namespace}/{r.name}") for r in repos)
    assert {f"{r.namespace}/{r.name}" for r in repos} == {"acme/app"}
    assert all(TAG_RE.match(t) for t in tags), tags
    assert all(USERNAME_RE.match(a.split("+")[0]) for a in accounts), accounts


def _benign(method: str, target: str, headers: dict[str, str]) -> bool:
    """Successes that are fine: a mount that found nothing falls back to an upload session (202),
    the token endpoint answers 200 with an empty grant, a trailing slash is redirected away."""
    if headers.get("location", "").endswith(target.rstrip("/").rsplit("/", 1)[-1]):
        return ".." not in headers["location"]
    return (method == "POST" and "mount=" in target) or target.startswith("/v2/auth")


async def _keys(world: World, prefix: str) -> list[str]:
    driver: StorageDriver = world.app.state.storage
    return [key async for key in driver.list(prefix)]


EVIL_KEYS = [
    "../x",
    "blobs/../../x",
    "/etc/passwd",
    "blobs//x",
    "blobs/./x",
    "blobs/x/",
    "blobs\n",
    "blobs/x\x00",
    ".x",
    "blobs/.x",
    "blobs\\..\\x",
    "",
    "uploads/../blobs",
    "_tmp/../../x",
]


async def test_storage_drivers_refuse_escaping_keys(world: World) -> None:
    driver: StorageDriver = world.app.state.storage

    async def one_chunk() -> Any:
        yield b"x"

    for key in EVIL_KEYS:
        calls: list[Any] = [
            lambda k=key: driver.stat(k),
            lambda k=key: driver.write(k, one_chunk()),
            lambda k=key: driver.delete(k),
            lambda k=key: driver.delete_prefix(k),
            lambda k=key: driver.compose([k], "blobs/sha256/aa/" + "a" * 64),
            lambda k=key: driver.compose(["uploads/x/1"], k),
        ]
        for call in calls:
            with pytest.raises(StorageKeyInvalid):
                await call()
        with pytest.raises(StorageKeyInvalid):
            async for _ in driver.read(key):
                pass
        with pytest.raises(StorageKeyInvalid):
            async for _ in driver.list(key):
                pass
