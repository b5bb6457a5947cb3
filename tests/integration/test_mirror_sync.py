"""Mirror from a real docker-registry into Moorage (worker in-process), check with skopeo."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from moorage.app import create_app
from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.services.audit import Actor
from tests.integration.conftest import Clients
from tests.support.ocilayout import write_image, write_index
from tests.support.server import ServerHandle, run_docker_registry

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
PASSWORD = "mirror admin password"


def auth_header(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


@pytest.fixture
def upstream(tmp_path: Path) -> Any:
    with run_docker_registry(tmp_path) as handle:
        yield handle


@pytest.fixture
async def moorage(
    base_config: dict[str, Any], database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    config = {
        **base_config,
        "INSECURE_OPEN_REGISTRY_NO_AUTH": False,
        "SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"],
        "REPO_MIRROR_INTERVAL": 1,
    }
    app = create_app(load_settings(None, **config), database=database, run_worker=True)
    async with app.router.lifespan_context(app):
        accounts = app.state.accounts
        admin = await accounts.create_user("admin", PASSWORD, None, Actor.system())
        await accounts.create_robot("admin", "mirror", None, Actor(accounts.principal_for(admin)))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://moorage.test",
            headers=auth_header("admin", PASSWORD),
        ) as client:
            yield client


def push_upstream(
    clients: Clients,
    upstream: ServerHandle,
    layout: Path,
    ref: str,
    repo: str,
    *,
    all_images: bool = False,
) -> None:
    args = ["copy", "--dest-tls-verify=false"]
    if all_images:
        args.append("--all")
    clients.skopeo(*args, f"oci:{layout}:{ref}", f"docker://{upstream.host}/{repo}:{ref}")


async def create_mirror(
    client: httpx.AsyncClient, upstream: ServerHandle, repo: str, patterns: list[str], **extra: Any
) -> None:
    response = await client.post(
        "/api/v1/repository", json={"repository": repo, "namespace": "admin"}
    )
    assert response.status_code == 201, response.text
    body = {
        "external_reference": f"{upstream.host}/library/{repo}",
        "sync_interval": 3600,
        "sync_start_date": "2099-01-01T00:00:00Z",
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": patterns},
        "robot_username": "admin+mirror",
        "external_registry_config": {"verify_tls": False},
        **extra,
    }
    response = await client.post(f"/api/v1/repository/admin/{repo}/mirror", json=body)
    assert response.status_code == 201, response.text


async def sync_and_wait(
    client: httpx.AsyncClient, repo: str, timeout: float = 60
) -> dict[str, Any]:
    response = await client.post(f"/api/v1/repository/admin/{repo}/mirror/sync-now")
    assert response.status_code == 204, response.text
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        body = (await client.get(f"/api/v1/repository/admin/{repo}/mirror")).json()
        if body["sync_status"] in {"SUCCESS", "FAIL"} and body["last_sync"]:
            return dict(body)
        await asyncio.sleep(0.2)
    raise AssertionError(f"mirror {repo} did not finish: {body}")


async def local_tags(client: httpx.AsyncClient, repo: str) -> list[str]:
    response = await client.get(f"/v2/admin/{repo}/tags/list")
    assert response.status_code == 200, response.text
    return list(response.json()["tags"])


async def test_mirror_single_and_multi_arch(
    clients: Clients, upstream: ServerHandle, moorage: httpx.AsyncClient, tmp_path: Path
) -> None:
    rng = random.Random(7)
    layout = tmp_path / "layout"
    write_image(layout, "1.0", layer_sizes=(20_000, 30_000), rng=rng)
    write_image(layout, "1.1", layer_sizes=(25_000,), rng=rng)
    write_index(layout, "multi", layer_sizes=(10_000,), rng=rng)
    write_image(layout, "skipme", layer_sizes=(1000,), rng=rng)
    push_upstream(clients, upstream, layout, "1.0", "library/app")
    push_upstream(clients, upstream, layout, "1.1", "library/app")
    push_upstream(clients, upstream, layout, "multi", "library/app", all_images=True)
    push_upstream(clients, upstream, layout, "skipme", "library/app")

    await create_mirror(moorage, upstream, "app", ["1.*", "multi"])
    result = await sync_and_wait(moorage, "app")
    assert result["sync_status"] == "SUCCESS", result
    assert result["last_sync"]["tags_copied"] == 3
    assert await local_tags(moorage, "app") == ["1.0", "1.1", "multi"]
    for tag in ("1.0", "1.1", "multi"):
        upstream_digest = httpx.head(
            f"{upstream.url}/v2/library/app/manifests/{tag}",
            headers={
                "Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
            },
        ).headers["Docker-Content-Digest"]
        local = await moorage.head(f"/v2/admin/app/manifests/{tag}")
        assert local.headers["Docker-Content-Digest"] == upstream_digest

    # A no-op re-sync copies nothing; a tag deleted upstream is pruned locally.
    again = await sync_and_wait(moorage, "app")
    assert again["last_sync"]["tags_skipped"] == 3
    assert again["last_sync"]["bytes"] == 0
    digest = httpx.head(
        f"{upstream.url}/v2/library/app/manifests/1.1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).headers["Docker-Content-Digest"]
    assert httpx.delete(f"{upstream.url}/v2/library/app/manifests/{digest}").status_code == 202
    pruned = await sync_and_wait(moorage, "app")
    assert pruned["sync_status"] == "SUCCESS", pruned
    assert pruned["last_sync"]["tags_deleted"] == 1
    assert await local_tags(moorage, "app") == ["1.0", "multi"]
