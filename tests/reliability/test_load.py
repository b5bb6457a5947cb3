"""A bounded load test (issue #6 item 5), on 127.0.0.1 only.

A real ``moorage serve`` (authentication on, mirror worker inside) and a real docker-registry
upstream. Set-up: a few images pushed to ``admin/app``; ``admin/mirrored`` mirrors the
upstream's ``library/src`` and has synced ``v1``; then upstream gets ``v2`` and ``v3``.

Load: ``CLIENTS`` concurrent clients (one httpx client and one bearer token each) pull a random
tag's manifest and all its blobs, verifying every digest, in a loop bounded in time
(``LOAD_SECONDS``) and in rounds, while a mirror sync (``v2``, ``v3``) and a push of new images
run. Asserted: zero errors (every response 200 with the right bytes), the sync succeeded with
upstream's digests, the pushed images are pullable, no traceback or secret in the server log.
Recorded: p50/p95/p99/max latency of manifest GETs, printed and written to
``<tmp>/load-results.json`` (and to ``$MOORAGE_LOAD_RESULTS`` when set).

``bench/load_bench.py`` runs the same scenario longer and with more clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.images import Image, make_image, push_image
from tests.support.server import DOCKER_REGISTRY, ServerHandle, run_docker_registry, run_moorage

pytestmark = pytest.mark.integration

CLIENTS = int(os.environ.get("MOORAGE_LOAD_CLIENTS", "50"))
LOAD_SECONDS = float(os.environ.get("MOORAGE_LOAD_SECONDS", "10"))
MAX_ROUNDS = 400  # per client: a bound even on a very fast machine
PASSWORD = "load test password"
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
KiB = 1024


@dataclass
class LoadResult:
    backend: str
    clients: int
    seconds: float
    manifest_gets: int = 0
    blob_gets: int = 0
    bytes_pulled: int = 0
    errors: list[str] = field(default_factory=list)
    manifest_ms: list[float] = field(default_factory=list)
    sync_seconds: float | None = None
    push_seconds: float | None = None

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.manifest_ms)

        def pct(p: float) -> float:
            if not ordered:
                return float("nan")
            return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)

        out = {k: v for k, v in asdict(self).items() if k not in {"errors", "manifest_ms"}}
        out.update(
            errors=len(self.errors),
            first_errors=self.errors[:10],
            requests_per_second=round((self.manifest_gets + self.blob_gets) / self.seconds, 1),
            manifest_p50_ms=pct(50),
            manifest_p95_ms=pct(95),
            manifest_p99_ms=pct(99),
            manifest_max_ms=round(ordered[-1], 2) if ordered else None,
        )
        return out


# --- set-up --------------------------------------------------------------------------------------


def create_user(server: ServerHandle, name: str) -> str:
    """`moorage admin create-user` against the server's config; returns the printed token."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "moorage", "admin", "create-user", name),
            *("--password", PASSWORD, "--config", str(server.config_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    match = re.search(r"access token \(shown once\): (\S+)", result.stdout)
    assert match, result.stdout + result.stderr
    return match.group(1)


def basic_oauth(token: str) -> httpx.BasicAuth:
    return httpx.BasicAuth("$oauthtoken", token)


async def api(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> httpx.Response:
    response = await client.request(method, f"/api/v1{path}", **kw)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response


async def configure_mirror(client: httpx.AsyncClient, upstream: ServerHandle) -> None:
    await api(client, "PUT", "/user/robots/mirror", json={})
    await api(
        client,
        "POST",
        "/repository",
        json={"namespace": "admin", "repository": "mirrored", "visibility": "private"},
    )
    body = {
        "external_reference": f"{upstream.host}/library/src",
        "sync_interval": 86400,
        "sync_start_date": "2099-01-01T00:00:00Z",
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["*"]},
        "robot_username": "admin+mirror",
        "external_registry_config": {"verify_tls": False},
    }
    await api(client, "POST", "/repository/admin/mirrored/mirror", json=body)


async def sync(client: httpx.AsyncClient, timeout: float) -> float:
    """sync-now and wait until that sync has finished successfully; returns its duration."""
    path = "/repository/admin/mirrored/mirror"
    before = (await api(client, "GET", path)).json()["last_sync"]
    started = time.monotonic()
    await api(client, "POST", f"{path}/sync-now")
    deadline = started + timeout
    while time.monotonic() < deadline:
        body = (await api(client, "GET", path)).json()
        last = body["last_sync"]
        if body["sync_status"] in {"SUCCESS", "FAIL", "CANCEL"} and last and last != before:
            assert body["sync_status"] == "SUCCESS", body
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    raise AssertionError(f"the mirror sync did not finish within {timeout}s")


def image(layers: tuple[int, ...]) -> Image:
    return make_image(layer_sizes=layers)


async def push_two_step(client: httpx.AsyncClient, repo: str, img: Image, tag: str) -> None:
    """POST an upload, PUT its bytes with ?digest= (what docker-registry needs), then the tag."""
    for blob in img.blobs:
        started = await client.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        separator = "&" if "?" in location else "?"
        done = await client.put(f"{location}{separator}digest={_sha256(blob)}", content=blob)
        assert done.status_code == 201, done.text
    response = await client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=img.manifest,
        headers={"Content-Type": img.media_type},
    )
    assert response.status_code == 201, response.text


# --- the load -------------------------------------------------------------------------------------


async def puller(
    index: int,
    url: str,
    token: str,
    targets: list[tuple[str, str]],
    deadline: float,
    result: LoadResult,
) -> None:
    rng = random.Random(index)
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        scopes = sorted({f"repository:{repo}:pull" for repo, _ in targets})
        issued = await client.get("/v2/auth", params={"scope": scopes}, auth=basic_oauth(token))
        if issued.status_code != 200:
            result.errors.append(f"client {index}: token {issued.status_code}")
            return
        client.headers["Authorization"] = f"Bearer {issued.json()['token']}"
        for _ in range(MAX_ROUNDS):
            if time.monotonic() >= deadline:
                return
            repo, tag = rng.choice(targets)
            try:
                await pull_once(client, repo, tag, result)
            except httpx.HTTPError as exc:
                result.errors.append(f"client {index}: {repo}:{tag}: {type(exc).__name__}: {exc}")


async def pull_once(client: httpx.AsyncClient, repo: str, tag: str, result: LoadResult) -> None:
    started = time.perf_counter()
    response = await client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
    result.manifest_ms.append((time.perf_counter() - started) * 1000)
    result.manifest_gets += 1
    if response.status_code != 200:
        result.errors.append(f"{repo}:{tag}: manifest {response.status_code} {response.text[:100]}")
        return
    payload = response.content
    if response.headers.get("Docker-Content-Digest") != _sha256(payload):
        result.errors.append(f"{repo}:{tag}: manifest digest mismatch")
        return
    doc = json.loads(payload)
    for descriptor in [doc["config"], *doc["layers"]]:
        blob = await client.get(f"/v2/{repo}/blobs/{descriptor['digest']}")
        result.blob_gets += 1
        result.bytes_pulled += len(blob.content)
        if blob.status_code != 200 or _sha256(blob.content) != descriptor["digest"]:
            result.errors.append(f"{repo}:{tag}: blob {descriptor['digest']} {blob.status_code}")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def pusher(url: str, token: str, images: list[Image], result: LoadResult) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=url, timeout=120, trust_env=False, auth=basic_oauth(token)
    ) as client:
        for i, pushed in enumerate(images):
            await push_two_step(client, "admin/pushed", pushed, f"p{i}")
    result.push_seconds = round(time.monotonic() - started, 2)


async def run_load(
    moorage: ServerHandle,
    upstream: ServerHandle,
    *,
    backend: str,
    clients: int,
    seconds: float,
    layer_kib: int = 64,
) -> LoadResult:
    """The whole scenario against running servers; returns what was measured."""
    token = create_user(moorage, "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=moorage.url, headers=headers, timeout=60, trust_env=False) as m,
        httpx.AsyncClient(base_url=upstream.url, timeout=60, trust_env=False) as up,
    ):
        # Local images, the upstream's first tag, the mirror and its first sync.
        local = [image((layer_kib * KiB, 2 * layer_kib * KiB)) for _ in range(4)]
        for i, img in enumerate(local):
            await push_image(m, "admin/app", img, f"t{i}")
        upstream_images = {f"v{i}": image((4 * layer_kib * KiB,) * 3) for i in (1, 2, 3)}
        await push_two_step(up, "library/src", upstream_images["v1"], "v1")
        await configure_mirror(m, upstream)
        await sync(m, timeout=60)
        for tag in ("v2", "v3"):  # the sync under load has real work to do
            await push_two_step(up, "library/src", upstream_images[tag], tag)

        targets = [("admin/app", f"t{i}") for i in range(len(local))]
        targets.append(("admin/mirrored", "v1"))
        result = LoadResult(backend=backend, clients=clients, seconds=seconds)
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        pushed = [image((layer_kib * KiB, 4 * layer_kib * KiB)) for _ in range(3)]

        async def timed_sync() -> None:
            result.sync_seconds = round(await sync(m, timeout=seconds + 60), 2)

        await asyncio.gather(
            *(puller(i, moorage.url, token, targets, deadline, result) for i in range(clients)),
            timed_sync(),
            pusher(moorage.url, token, pushed, result),
        )
        result.seconds = round(time.monotonic() - started, 2)

        # The sync brought upstream's content; the pushed images are whole.
        for tag, img in upstream_images.items():
            got = await m.get(
                f"/v2/admin/mirrored/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}
            )
            if got.status_code != 200 or got.headers["Docker-Content-Digest"] != img.digest:
                result.errors.append(f"mirrored {tag}: {got.status_code}")
        for i, img in enumerate(pushed):
            got = await m.get(
                f"/v2/admin/pushed/manifests/p{i}", headers={"Accept": MANIFEST_ACCEPT}
            )
            if got.status_code != 200 or got.content != img.manifest:
                result.errors.append(f"pushed p{i}: {got.status_code}")
    return result


# --- the test -------------------------------------------------------------------------------------


@pytest.fixture
def servers(
    base_config: dict[str, Any], backend: str, tmp_path: Path
) -> Iterator[tuple[ServerHandle, ServerHandle]]:
    if not Path(DOCKER_REGISTRY).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{DOCKER_REGISTRY} is required under CI=true")
        pytest.skip(f"{DOCKER_REGISTRY} is not installed")
    if backend == "postgres-s3":
        from tests.integration.conftest import _truncate_postgres

        asyncio.run(_truncate_postgres(str(base_config["DB_URI"])))
    config = {
        **base_config,
        "INSECURE_OPEN_REGISTRY_NO_AUTH": False,
        "SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"],
        "REPO_MIRROR_INTERVAL": 1,
        "LOG_FORMAT": "json",
    }
    with (
        run_docker_registry(tmp_path / "upstream") as upstream,
        run_moorage(config, tmp_path / "moorage") as moorage,
    ):
        try:
            yield moorage, upstream
        finally:
            print(f"--- moorage log (tail) ---\n{moorage.log(4000)}")


def test_pulls_under_load_with_a_sync_and_a_push(
    servers: tuple[ServerHandle, ServerHandle], backend: str, tmp_path: Path
) -> None:
    moorage, upstream = servers
    result = asyncio.run(
        run_load(moorage, upstream, backend=backend, clients=CLIENTS, seconds=LOAD_SECONDS)
    )
    summary = result.summary()
    text = json.dumps(summary, indent=2)
    print(f"load test results ({backend}):\n{text}")
    (tmp_path / "load-results.json").write_text(text)
    if os.environ.get("MOORAGE_LOAD_RESULTS"):
        Path(os.environ["MOORAGE_LOAD_RESULTS"]).write_text(text)

    assert not result.errors, result.errors[:20]
    assert result.manifest_gets >= CLIENTS, summary
    assert result.sync_seconds is not None
    assert result.push_seconds is not None
    log = moorage.log(tail=5_000_000)
    assert "Traceback" not in log, log[-4000:]
    for name, secret in server_secrets(moorage).items():
        assert secret not in log, f"{name} in the server log"


def server_secrets(moorage: ServerHandle) -> dict[str, str]:
    """The user's password and the server's generated keys (secrets.yaml in DATA_DIR)."""
    config = yaml.safe_load(moorage.config_path.read_text())
    path = Path(config["DATA_DIR"]) / "secrets.yaml"
    generated = yaml.safe_load(path.read_text()) if path.exists() else {}
    assert generated, f"no generated secrets in {path}"
    return {"password": PASSWORD, **{str(k): str(v) for k, v in generated.items()}}
