"""The mirror against a faulty upstream (issue #6 item 1) and SSRF at sync time (item 4).

A real docker-registry holds ``library/app:v1`` and ``:v2``; the mirror reads it through
tests/support/faultproxy.py, which injects one kind of fault per test: 5xx, 429 with
Retry-After, a reset or a truncated body in the middle of a blob, wrong bytes, a slow drip and a
stall, a bearer token that expires mid-sync, listed tags that then vanish, redirects to where
the SSRF rules forbid. For each: a transient fault is absorbed by the upstream client's retries
(back-off, Retry-After, Range resume, token refresh) and the sync succeeds; a permanent one
ends the sync with the right typed ``last_error`` and Quay's status rules (FAIL, one retry used,
start date unchanged; SUCCESS resets the retries); after every sync the consistency check finds
no tag pointing at missing or wrong content and nothing staged is left behind; and once the
fault is gone, the next sync converges on upstream's digests.

The upstream client's back-off is shortened (``BACKOFF_BASE_SECONDS``) so the file stays fast;
Retry-After values are honoured as sent.
"""

from __future__ import annotations

import contextlib
import email.utils
import inspect
import itertools
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from moorage.app import create_app
from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.mirror import transport
from moorage.mirror import upstream as upstream_client
from moorage.mirror.ssrf import system_resolver
from tests.integration.mirror_helpers import (
    InProcessMoorage,
    bootstrap_accounts,
    create_mirror,
    get_mirror,
    in_process_moorage,
    local_manifest,
    local_tags,
    mirror_config,
    sync_and_wait,
)
from tests.support.consistency import check_consistency, staging_leftovers
from tests.support.faultproxy import (
    AddTags,
    Corrupt,
    Drip,
    FaultProxy,
    Redirect,
    Reset,
    Seen,
    Truncate,
    error_status,
    manifest_unknown,
    rate_limited,
    run_fault_proxy,
)
from tests.support.images import Image, make_image, sha256
from tests.support.server import DOCKER_REGISTRY, ServerHandle, run_docker_registry

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
REPO = "library/app"
LOCAL = "app"
ATTEMPTS = 4  # UpstreamClient's default: one request and three retries
SYNC_TIMEOUT = 60.0
MiB = 1024 * 1024


# --- the upstream registry (one per module, never changed by a test) ------------------------------


@dataclass(frozen=True)
class Upstream:
    server: ServerHandle
    images: dict[str, Image]
    digests: dict[str, str]  # tag -> manifest digest
    repo: str = REPO

    @property
    def port(self) -> int:
        return self.server.port

    def layer(self, tag: str) -> str:
        """The digest of the tag's first (largest) layer."""
        return sha256(self.images[tag].layers[0])


def _push(url: str, repo: str, image: Image, tag: str) -> str:
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        for blob in image.blobs:
            digest = sha256(blob)
            if http.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
                continue
            started = http.post(f"/v2/{repo}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = started.headers["location"]
            separator = "&" if "?" in location else "?"
            done = http.put(f"{location}{separator}digest={digest}", content=blob)
            assert done.status_code == 201, done.text
        response = http.put(
            f"/v2/{repo}/manifests/{tag}",
            content=image.manifest,
            headers={"Content-Type": image.media_type},
        )
        assert response.status_code == 201, response.text
        return str(response.headers["docker-content-digest"])


# The upstream client's behaviour does not depend on the backend; the faults that leave bytes
# half-written (reset, truncation, wrong bytes) also run on PostgreSQL + S3, where a cancelled
# download is an S3 multipart upload to abort. The others run on SQLite only, to keep CI short.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite-fs"], indirect=True)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    if not Path(DOCKER_REGISTRY).exists():
        message = f"{DOCKER_REGISTRY} is not installed (Debian package docker-registry)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (required under CI=true)")
        pytest.skip(message)
    images = {
        "v1": make_image(layer_sizes=(24_000,)),
        "v2": make_image(layer_sizes=(40_000, 12_000)),
    }
    with run_docker_registry(tmp_path_factory.mktemp("upstream")) as server:
        digests = {tag: _push(server.url, REPO, image, tag) for tag, image in images.items()}
        yield Upstream(server, images, digests)


@pytest.fixture(scope="module")
def big_upstream(upstream: Upstream) -> Upstream:
    """``library/big:v1`` (one 6 MiB layer) on the same registry."""
    images = {"v1": make_image(layer_sizes=(6 * MiB,))}
    digests = {"v1": _push(upstream.server.url, "library/big", images["v1"], "v1")}
    return Upstream(upstream.server, images, digests, "library/big")


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_client, "BACKOFF_BASE_SECONDS", 0.05)


# --- one mirror of library/app through a fault proxy --------------------------------------------


@dataclass
class Mirror:
    proxy: FaultProxy
    moorage: InProcessMoorage
    upstream: Upstream
    name: str = LOCAL

    @property
    def client(self) -> httpx.AsyncClient:
        return self.moorage.client

    def blob(self, tag: str) -> str:
        """Target regex of GETs of the tag's first layer."""
        return f"/blobs/{self.upstream.layer(tag)}$"

    async def sync(self) -> dict[str, Any]:
        body = await sync_and_wait(self.client, self.name, timeout=SYNC_TIMEOUT)
        await self.check_invariants()
        return body

    async def check_invariants(self) -> None:
        """No tag points at missing or wrong content; nothing staged is left behind."""
        storage = self.moorage.storage
        report = await check_consistency(self.moorage.db, storage, [f"admin/{self.name}"])
        assert report.problems == [], report.problems
        assert await staging_leftovers(storage) == []
        for tag, digest in (await self.local_digests()).items():
            assert digest == self.upstream.digests.get(tag), (tag, digest)

    async def local_digests(self) -> dict[str, str]:
        digests = {}
        for tag in await local_tags(self.client, self.name):
            response = await local_manifest(self.client, self.name, tag)
            assert response.status_code == 200, response.text
            digests[tag] = str(response.headers["docker-content-digest"])
        return digests

    async def expect_failure(self, kind: str, retries: int = 2) -> dict[str, Any]:
        start_date = (await get_mirror(self.client, self.name))["sync_start_date"]
        body = await self.sync()
        assert body["sync_status"] == "FAIL", body
        assert body["last_error"] is not None, body
        assert body["last_error"]["kind"] == kind, body
        assert body["last_sync"]["status"] == "failed", body
        assert body["sync_retries_remaining"] == retries, body
        assert body["sync_start_date"] == start_date, body  # a retry, not the next slot
        return body

    async def expect_success(self) -> dict[str, Any]:
        body = await self.sync()
        assert body["sync_status"] == "SUCCESS", body
        assert body["last_error"] is None, body
        assert body["sync_retries_remaining"] == 3, body
        assert await self.local_digests() == self.upstream.digests
        return body


@contextlib.asynccontextmanager
async def mirrored(
    upstream: Upstream,
    base_config: dict[str, Any],
    database: Database,
    *,
    proxy: FaultProxy | None = None,
    mirror: dict[str, Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Mirror]:
    """Moorage (worker in-process) with ``admin/app`` mirroring ``library/app`` via a proxy."""
    with contextlib.ExitStack() as stack:
        if proxy is None:
            proxy = stack.enter_context(run_fault_proxy(upstream.port))
        async with in_process_moorage(base_config, database, **overrides) as moorage:
            await create_mirror(
                moorage.client, f"{proxy.host}/{REPO}", LOCAL, ["*"], **(mirror or {})
            )
            try:
                yield Mirror(proxy, moorage, upstream)
            finally:
                print(f"faults injected: {proxy.injected()}")
                if proxy.auth is not None:
                    auth = proxy.auth
                    print(
                        f"token flow: issued {auth.issued}, refused {auth.refused}, "
                        f"challenged {auth.challenged}, expired {auth.expired}"
                    )


def _range_starts(seen: list[Seen]) -> list[int]:
    """The start offset each request asked for (0 without a Range header)."""
    starts = []
    for request in seen:
        value = request.headers.get("range", "bytes=0-")
        assert value.startswith("bytes="), value
        assert value.endswith("-"), value
        starts.append(int(value[len("bytes=") : -1]))
    return starts


def _gaps(seen: list[Seen]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(seen)]


# --- the faults ----------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_server_errors(upstream: Upstream, base_config: Any, database: Database) -> None:
    async with mirrored(upstream, base_config, database) as m:
        blob = m.blob("v2")
        permanent = m.proxy.add("GET", blob, error_status(503))
        await m.expect_failure("unavailable")
        assert permanent.injected == ATTEMPTS
        assert sorted(await m.local_digests()) == ["v1"]  # v2 failed, v1 is complete

        m.proxy.clear()
        transient = [m.proxy.add("GET", blob, error_status(s), times=1) for s in (500, 502, 503)]
        await m.expect_success()
        assert [rule.injected for rule in transient] == [1, 1, 1]

        # A listing that keeps failing: nothing is pruned, nothing moves.
        m.proxy.clear()
        listing = m.proxy.add("GET", r"/tags/list", error_status(502))
        await m.expect_failure("unavailable")
        assert listing.injected == ATTEMPTS
        assert await m.local_digests() == upstream.digests

        m.proxy.clear()
        await m.expect_success()


@SQLITE_ONLY
async def test_rate_limited(upstream: Upstream, base_config: Any, database: Database) -> None:
    async with mirrored(upstream, base_config, database) as m:
        blob = m.blob("v2")
        permanent = m.proxy.add("GET", blob, rate_limited("1"))
        await m.expect_failure("rate_limited")
        assert permanent.injected == ATTEMPTS
        # Each retry waited for Retry-After (1 s), not for the (shortened) back-off.
        assert min(_gaps(m.proxy.requests("GET", blob))) >= 0.95

        # Transient, with Retry-After as an HTTP-date (what some CDNs send).
        def in_two_seconds() -> str:
            return email.utils.formatdate(time.time() + 2, usegmt=True)

        m.proxy.clear()
        before = len(m.proxy.requests("GET", blob))
        dated = m.proxy.add("GET", blob, rate_limited(in_two_seconds), times=1)
        await m.expect_success()
        assert dated.injected == 1
        limited, retried = m.proxy.requests("GET", blob)[before:]
        assert retried.at - limited.at >= 0.9  # 1-2 s: an HTTP-date has a one-second resolution


async def test_connection_reset_mid_blob(
    upstream: Upstream, big_upstream: Upstream, base_config: Any, database: Database
) -> None:
    async with mirrored(upstream, base_config, database) as m:
        blob = m.blob("v2")
        permanent = m.proxy.add("GET", blob, Reset(after=4_000))
        await m.expect_failure("connection")
        assert permanent.injected == ATTEMPTS
        starts = _range_starts(m.proxy.requests("GET", blob))
        # Every attempt resumed where the previous one broke off.
        assert starts[0] == 0, starts
        assert starts == sorted(set(starts)), starts

        m.proxy.clear()
        before = len(m.proxy.requests("GET", blob))
        transient = m.proxy.add("GET", blob, Reset(after=20_000), times=1)
        await m.expect_success()
        assert transient.injected == 1
        first, resumed = _range_starts(m.proxy.requests("GET", blob)[before:])
        assert first == 0
        assert 0 < resumed <= 20_000

        # A large layer over a link that drops every 1.5 MB: more drops than retries, but each
        # attempt makes progress, so the transfer completes.
        big = Mirror(m.proxy, m.moorage, big_upstream, name="big")
        drops = m.proxy.add("GET", big.blob("v1"), Reset(after=1_500_000), times=4)
        await create_mirror(m.client, f"{m.proxy.host}/{big_upstream.repo}", "big", ["*"])
        await big.expect_success()
        assert drops.injected == 4
        starts = _range_starts(m.proxy.requests("GET", big.blob("v1")))
        assert len(starts) == 5
        assert starts == sorted(set(starts)), starts


async def test_truncated_body(upstream: Upstream, base_config: Any, database: Database) -> None:
    async with mirrored(upstream, base_config, database) as m:
        blob = m.blob("v2")
        permanent = m.proxy.add("GET", blob, Truncate(after=4_000))
        await m.expect_failure("connection")
        assert permanent.injected == ATTEMPTS
        starts = _range_starts(m.proxy.requests("GET", blob))
        assert starts[0] == 0, starts
        assert starts == sorted(set(starts)), starts

        m.proxy.clear()
        before = len(m.proxy.requests("GET", blob))
        blob_rule = m.proxy.add("GET", blob, Truncate(after=20_000), times=1)
        manifest_rule = m.proxy.add("GET", r"/manifests/v2$", Truncate(after=100), times=1)
        await m.expect_success()
        assert (blob_rule.injected, manifest_rule.injected) == (1, 1)
        first, resumed = _range_starts(m.proxy.requests("GET", blob)[before:])
        assert first == 0
        assert 0 < resumed <= 20_000


@SQLITE_ONLY
async def test_a_failing_tag_does_not_cancel_a_blob_another_tag_waits_for(
    upstream: Upstream, base_config: Any, database: Database
) -> None:
    """v1 and v2 share their config blob. v2 lists first and starts its download; v1 then waits
    for it; v2's layer turns out corrupt while the shared download is still running. v2 fails,
    but the shared download goes on and v1 is stored complete (a CI run once lost v1 here)."""
    config = sha256(upstream.images["v1"].config)
    assert config == sha256(upstream.images["v2"].config)
    async with mirrored(upstream, base_config, database) as m:
        m.proxy.add("GET", r"/manifests/v1$", Drip(rate=1_000), times=1)  # ~0.5 s
        shared = m.proxy.add("GET", f"/blobs/{config}$", Drip(rate=40), times=1)  # ~2 s
        corrupt = m.proxy.add("GET", m.blob("v2"), Corrupt(rate=40_000), times=1)  # ~1 s
        await m.expect_failure("digest_mismatch")
        assert (shared.injected, corrupt.injected) == (1, 1)
        assert sorted(await m.local_digests()) == ["v1"]
        assert len(m.proxy.requests("GET", f"/blobs/{config}$")) == 1  # fetched once, shared
        m.proxy.clear()
        await m.expect_success()


async def test_wrong_bytes(upstream: Upstream, base_config: Any, database: Database) -> None:
    async with mirrored(upstream, base_config, database) as m:
        blob = m.proxy.add("GET", m.blob("v2"), Corrupt(), times=1)
        await m.expect_failure("digest_mismatch")
        assert blob.injected == 1
        assert sorted(await m.local_digests()) == ["v1"]
        stored = await m.client.get(f"/v2/admin/{LOCAL}/blobs/{upstream.layer('v2')}")
        assert stored.status_code == 404  # the corrupt copy was never committed

        # A manifest whose bytes no longer match Docker-Content-Digest (still valid JSON).
        m.proxy.clear()
        manifest = m.proxy.add("GET", r"/manifests/v2$", Corrupt(json_digest=True), times=1)
        await m.expect_failure("digest_mismatch", retries=1)
        assert manifest.injected == 1
        assert sorted(await m.local_digests()) == ["v1"]

        m.proxy.clear()
        await m.expect_success()


@SQLITE_ONLY
async def test_slow_drip_and_stall(
    upstream: Upstream, base_config: Any, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "READ_TIMEOUT", 1.0)
    async with mirrored(upstream, base_config, database) as m:
        blob = m.blob("v2")
        stall = m.proxy.add("GET", blob, Drip(rate=0.25))  # one byte every 4 s
        await m.expect_failure("timeout")
        assert stall.injected == ATTEMPTS

        # One stalled attempt, then a slow but steady transfer (~1.3 s, never 1 s silent).
        m.proxy.clear()
        stall = m.proxy.add("GET", blob, Drip(rate=0.25), times=1)
        steady = m.proxy.add("GET", blob, Drip(rate=32_000))
        started = time.monotonic()
        await m.expect_success()
        assert (stall.injected, steady.injected) == (1, 1)
        assert time.monotonic() - started >= 2.0  # the stalled second plus the drip


@SQLITE_ONLY
async def test_bearer_token_expires_mid_sync(
    upstream: Upstream, base_config: Any, database: Database
) -> None:
    credentials = {"external_registry_username": "puller", "external_registry_password": "wrong"}
    # One tag at a time: the second tag's requests come after the first token expired.
    async with mirrored(
        upstream, base_config, database, mirror=credentials, REPO_MIRROR_TAG_CONCURRENCY=1
    ) as m:
        auth = m.proxy.require_token(credentials=("puller", "right"), lifetime=0.3, expires_in=60)
        await m.expect_failure("auth")
        assert auth.refused >= 1
        assert auth.issued == 0
        assert {s.fault for s in m.proxy.requests(".*", r"^/v2/.")} == {"auth"}

        response = await m.client.put(
            f"/api/v1/repository/admin/{LOCAL}/mirror",
            json={**credentials, "external_registry_password": "right"},
        )
        assert response.status_code == 201, response.text
        hiccup = m.proxy.add("GET", r"^/token", error_status(503), times=1)
        m.proxy.add("GET", r"/blobs/", Drip(rate=48_000))  # the first tag takes >= 0.5 s
        await m.expect_success()
        assert hiccup.injected == 1
        assert auth.expired >= 1
        assert auth.issued >= 2

        # Tokens good for two requests only: the skip-only sync needs a refresh too.
        m.proxy.clear()
        auth.lifetime, auth.max_uses = 300.0, 2
        expired = auth.expired
        await m.expect_success()
        assert auth.expired > expired
        # The password only ever went to the token realm, never to /v2/.
        for seen in m.proxy.requests(".*", r"^/v2/"):
            assert not seen.headers.get("authorization", "").startswith("Basic"), seen


@SQLITE_ONLY
async def test_listed_tags_that_vanish(
    upstream: Upstream, base_config: Any, database: Database
) -> None:
    async with mirrored(upstream, base_config, database) as m:
        await m.expect_success()
        listing = m.proxy.add("GET", r"/tags/list", AddTags(("ghost",)))
        vanished = m.proxy.add("GET|HEAD", r"/manifests/v2$", manifest_unknown())
        await m.expect_failure("not_found")
        assert listing.injected == 1
        assert vanished.injected >= 2
        # v2 keeps the content it had; "ghost" never appears.
        assert await m.local_digests() == upstream.digests

        m.proxy.clear()
        await m.expect_success()


# --- SSRF at sync time ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def moorage_resolving(
    base_config: dict[str, Any], database: Database, resolver: Any, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """In-process Moorage (with its worker) whose SSRF guard resolves names with ``resolver``."""
    settings = load_settings(None, **mirror_config(base_config, **overrides))
    app = create_app(settings, database=database, run_worker=True, resolver=resolver)
    async with app.router.lifespan_context(app):
        headers = await bootstrap_accounts(app.state.accounts)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://moorage.test", headers=headers
        ) as client:
            yield client


async def _refused_at_sync(client: httpx.AsyncClient, name: str) -> None:
    body = await sync_and_wait(client, name, timeout=SYNC_TIMEOUT)
    assert body["sync_status"] == "FAIL", body
    assert body["last_error"]["kind"] == "invalid_source_registry", body
    assert body["sync_retries_remaining"] == 2, body


@SQLITE_ONLY
async def test_source_name_resolving_inside_is_refused_at_sync(
    upstream: Upstream, base_config: Any, database: Database
) -> None:
    dns = {"registry.rebind.test": ["34.1.2.9"]}

    async def resolver(host: str) -> list[str]:
        if host in dns:
            return list(dns[host])
        raise OSError(f"[Errno -2] Name or service not known: {host!r}")

    with run_fault_proxy(upstream.port) as proxy:
        # A public answer when the mirror is saved, a loopback one when it syncs (DNS rebinding).
        async with moorage_resolving(base_config, database, resolver, SSRF_ALLOWED_HOSTS=[]) as c:
            await create_mirror(c, f"registry.rebind.test:{proxy.port}/{REPO}", "rebind", ["*"])
            dns["registry.rebind.test"] = ["127.0.0.1"]
            await _refused_at_sync(c, "rebind")
        assert proxy.seen == []

        # `localhost` allowed by name: mirrored; no longer allowed: refused, nothing pruned.
        allowed = {"SSRF_ALLOWED_HOSTS": ["localhost"]}
        async with moorage_resolving(base_config, database, system_resolver, **allowed) as c:
            await create_mirror(c, f"localhost:{proxy.port}/{REPO}", LOCAL, ["*"])
            body = await sync_and_wait(c, LOCAL, timeout=SYNC_TIMEOUT)
            assert body["sync_status"] == "SUCCESS", body
        contacted = len(proxy.seen)
        async with in_process_moorage(base_config, database) as moorage:  # 127.0.0.0/8 only
            m = Mirror(proxy, moorage, upstream)
            await _refused_at_sync(moorage.client, LOCAL)
            await m.check_invariants()
            assert await m.local_digests() == upstream.digests
        assert len(proxy.seen) == contacted


def _connecting() -> bool:
    """Whether the resolver was called to open a connection (not by a check before it)."""
    return any(frame.function == "connect_tcp" for frame in inspect.stack())


@SQLITE_ONLY
async def test_connections_go_only_to_the_vetted_address(
    upstream: Upstream, base_config: Any, database: Database
) -> None:
    """DNS rebinding: the name resolves to a public address for every check, and to loopback
    only when the connection is opened. Were httpx to resolve the name again itself, the
    connection would follow the second answer; the worker connects to the vetted address."""
    asked: list[tuple[str, bool]] = []

    async def rebinding(host: str) -> list[str]:
        asked.append((host, _connecting()))
        if host != "registry.rebind.test":
            raise OSError(f"[Errno -2] Name or service not known: {host!r}")
        return ["127.0.0.1"] if _connecting() else ["34.1.2.9"]

    with run_fault_proxy(upstream.port) as proxy:
        async with moorage_resolving(base_config, database, rebinding, SSRF_ALLOWED_HOSTS=[]) as c:
            await create_mirror(c, f"registry.rebind.test:{proxy.port}/{REPO}", "rebind", ["*"])
            await _refused_at_sync(c, "rebind")
        assert proxy.seen == []
        assert ("registry.rebind.test", True) in asked  # refused when connecting

        # The other way round: a name only the guard's resolver knows, allowed by address.
        # The sync succeeds, so the connection went to the address the guard vetted.
        async def pinned(host: str) -> list[str]:
            if host != "registry.pinned.test":
                raise OSError(f"[Errno -2] Name or service not known: {host!r}")
            return ["127.0.0.1"]

        allowed = {"SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"]}
        async with moorage_resolving(base_config, database, pinned, **allowed) as c:
            await create_mirror(c, f"registry.pinned.test:{proxy.port}/{REPO}", LOCAL, ["*"])
            body = await sync_and_wait(c, LOCAL, timeout=SYNC_TIMEOUT)
            assert body["sync_status"] == "SUCCESS", body
        assert proxy.requests("GET", r"/manifests/")


@SQLITE_ONLY
async def test_blob_redirect_to_disallowed_host_is_refused(
    upstream: Upstream, base_config: Any, database: Database
) -> None:
    with run_fault_proxy(upstream.port) as source, run_fault_proxy(upstream.port) as hop:
        async with mirrored(upstream, base_config, database, proxy=source) as m:
            # source -307-> hop (127.0.0.1, allowed) -307-> localhost (a blocked name). Were the
            # second hop not checked, it would reach the hop proxy again and succeed.
            source.add("GET", m.blob("v2"), Redirect(f"http://{hop.host}{{path}}?hop=1"))
            hop.add("GET", r"\?hop=1$", Redirect(f"http://localhost:{hop.port}{{path}}?hop=2"))
            await m.expect_failure("invalid_source_registry")
            assert len(hop.requests("GET", r"\?hop=1$")) == 1  # refused, not retried
            assert hop.requests(".*", r"\?hop=2$") == []
            assert sorted(await m.local_digests()) == ["v1"]

            hop.clear()  # the allowed hop now serves the blob
            await m.expect_success()
            assert len(hop.requests("GET", r"\?hop=1$")) == 2
