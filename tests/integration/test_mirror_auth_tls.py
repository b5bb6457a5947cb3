"""Mirror from docker-registry behind htpasswd Basic auth, and over TLS with a private CA."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from moorage.db.engine import Database
from tests.integration.conftest import Clients
from tests.integration.mirror_helpers import (
    create_mirror,
    get_mirror,
    in_process_moorage,
    list_runs,
    local_manifest,
    local_tags,
    push_upstream,
    sync_and_wait,
    upstream_digest,
    upstream_manifest,
)
from tests.support.ocilayout import write_image
from tests.support.server import run_docker_registry
from tests.support.tlscerts import make_self_signed, make_test_pki

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
UPSTREAM_CREDS = ("puller", "upstream secret")


async def test_mirror_with_basic_auth(
    clients: Clients,
    base_config: dict[str, Any],
    database: Database,
    tmp_path: Path,
    docker_registry_binary: str,
) -> None:
    layout = tmp_path / "layout"
    write_image(layout, "v1", layer_sizes=(30_000, 1_000), rng=random.Random(21))
    with run_docker_registry(tmp_path, htpasswd=UPSTREAM_CREDS) as upstream:
        push_upstream(clients, upstream, layout, "v1", "library/app", creds=UPSTREAM_CREDS)
        reference = f"{upstream.host}/library/app"
        async with in_process_moorage(base_config, database) as moorage:
            client = moorage.client
            user, password = UPSTREAM_CREDS
            await create_mirror(
                client,
                reference,
                "good",
                ["v1"],
                external_registry_username=user,
                external_registry_password=password,
            )
            await create_mirror(
                client,
                reference,
                "wrong",
                ["v1"],
                external_registry_username=user,
                external_registry_password="not the password",
            )
            await create_mirror(client, reference, "anonymous", ["v1"])

            good = await sync_and_wait(client, "good")
            assert good["sync_status"] == "SUCCESS", good
            assert good["external_registry_username"] == user
            assert "external_registry_password" not in good
            ours = await local_manifest(client, "good", "v1")
            theirs = upstream_manifest(upstream, "library/app", "v1", creds=UPSTREAM_CREDS)
            assert ours.content == theirs.content
            assert ours.headers["Docker-Content-Digest"] == theirs.headers["Docker-Content-Digest"]

            for repo in ("wrong", "anonymous"):
                failed = await sync_and_wait(client, repo)
                assert failed["sync_status"] == "FAIL", failed
                assert failed["last_error"]["kind"] == "auth", failed
                assert failed["last_sync"]["status"] == "failed"
                assert await local_tags(client, repo) == []
                runs = await list_runs(client, repo)
                assert runs[0]["error_kind"] == "auth"
                # The password never shows up in what the API returns.
                assert "not the password" not in str(runs) + str(failed)
                assert password not in str(runs) + str(failed)


async def test_mirror_over_tls(
    clients: Clients,
    base_config: dict[str, Any],
    database: Database,
    tmp_path: Path,
    docker_registry_binary: str,
) -> None:
    """Two TLS upstreams: one with a self-signed certificate, one with a private CA's leaf."""
    self_signed = make_self_signed(tmp_path / "self-signed")
    pki = make_test_pki(tmp_path / "pki")
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_bytes(self_signed.ca_cert.read_bytes() + pki.ca_cert.read_bytes())
    layout = tmp_path / "layout"
    write_image(layout, "v1", layer_sizes=(30_000,), rng=random.Random(22))
    with (
        run_docker_registry(tmp_path, tls=(self_signed.server_cert, self_signed.server_key)) as a,
        run_docker_registry(tmp_path, tls=(pki.server_cert, pki.server_key)) as b,
    ):
        digests = {}
        for name, upstream in (("a", a), ("b", b)):
            assert upstream.url.startswith("https://")
            push_upstream(clients, upstream, layout, "v1", "library/app")
            digests[name] = upstream_digest(upstream, "library/app", "v1")
        references = {"a": f"{a.host}/library/app", "b": f"{b.host}/library/app"}
        strict = {"verify_tls": True}

        # Without a CA bundle: verify_tls false works, verify_tls true fails with kind "tls".
        async with in_process_moorage(base_config, database) as moorage:
            client = moorage.client
            await create_mirror(
                client,
                references["a"],
                "insecure",
                ["v1"],
                external_registry_config={"verify_tls": False},
            )
            for name in ("a", "b"):
                await create_mirror(
                    client,
                    references[name],
                    f"strict-{name}",
                    ["v1"],
                    external_registry_config=strict,
                )
            insecure = await sync_and_wait(client, "insecure")
            assert insecure["sync_status"] == "SUCCESS", insecure
            assert insecure["external_registry_config"]["verify_tls"] is False
            head = await local_manifest(client, "insecure", "v1")
            assert head.headers["Docker-Content-Digest"] == digests["a"]
            for name in ("a", "b"):
                failed = await sync_and_wait(client, f"strict-{name}")
                assert failed["sync_status"] == "FAIL", failed
                assert failed["last_error"]["kind"] == "tls", failed
                assert await local_tags(client, f"strict-{name}") == []

        # Restarted with REPO_MIRROR_CA_BUNDLE: the same strict mirrors now verify and sync.
        async with in_process_moorage(
            base_config, database, REPO_MIRROR_CA_BUNDLE=str(bundle)
        ) as moorage:
            client = moorage.client
            for name in ("a", "b"):
                repo = f"strict-{name}"
                assert (await get_mirror(client, repo))["external_registry_config"] == strict
                body = await sync_and_wait(client, repo)
                assert body["sync_status"] == "SUCCESS", body
                assert body["last_error"] is None
                head = await local_manifest(client, repo, "v1")
                assert head.headers["Docker-Content-Digest"] == digests[name]
