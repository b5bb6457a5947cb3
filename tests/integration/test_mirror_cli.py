"""`moorage mirror ...` against a live `moorage serve` mirroring a real docker-registry."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Clients
from tests.integration.mirror_helpers import mirror_config, push_upstream
from tests.support.ocilayout import write_image
from tests.support.server import run_docker_registry, run_moorage

pytestmark = pytest.mark.integration


def moorage_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moorage", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_mirror_cli_create_sync_wait_runs(
    base_config: dict[str, Any], backend: str, clients: Clients, tmp_path: Path
) -> None:
    if backend != "sqlite-fs":
        pytest.skip("the CLI talks HTTP only; one backend is enough")
    layout = tmp_path / "layout"
    write_image(layout, "v1", layer_sizes=(10_000,), rng=random.Random(5))
    write_image(layout, "v2", layer_sizes=(12_000,), rng=random.Random(6))
    with (
        run_docker_registry(tmp_path) as upstream,
        run_moorage(mirror_config(base_config), tmp_path / "moorage") as server,
    ):
        push_upstream(clients, upstream, layout, "v1", "library/cli")
        push_upstream(clients, upstream, layout, "v2", "library/cli")
        made = moorage_cli(
            "admin",
            "create-user",
            "ops",
            "--superuser",
            "--password",
            "ops password 1",
            "--config",
            str(server.config_path),
        )
        assert made.returncode == 0, made.stderr
        token = re.search(r"shown once\): (\S+)", made.stdout)
        assert token is not None
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        api = f"{server.url}/api/v1"
        assert (
            httpx.post(
                f"{api}/repository",
                json={"repository": "cli", "namespace": "ops"},
                headers=headers,
                trust_env=False,
            ).status_code
            == 201
        )
        assert (
            httpx.put(
                f"{api}/user/robots/mirror", json={}, headers=headers, trust_env=False
            ).status_code
            == 201
        )
        env = {"PATH": "/usr/bin:/bin", "MOORAGE_URL": server.url, "MOORAGE_TOKEN": token.group(1)}

        created = moorage_cli(
            "mirror",
            "create",
            "ops/cli",
            "--source",
            f"{upstream.host}/library/cli",
            "--robot",
            "ops+mirror",
            "--tags",
            "v*",
            "--start",
            "2099-01-01T00:00:00Z",
            "--no-verify-tls",
            env=env,
        )
        assert created.returncode == 0, created.stderr
        synced = moorage_cli("mirror", "sync-now", "ops/cli", "--wait", "--timeout", "60", env=env)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert "SUCCESS: copied 2" in synced.stdout
        runs = moorage_cli("mirror", "runs", "ops/cli", env=env)
        assert "succeeded" in runs.stdout
        assert "copied 2" in runs.stdout
        shown = moorage_cli("mirror", "show", "ops/cli", env=env)
        assert '"sync_status": "SUCCESS"' in shown.stdout
        assert "password" not in shown.stdout
        listed = moorage_cli("mirror", "list", "--namespace", "ops", env=env)
        assert "ops/cli\tSUCCESS" in listed.stdout
        missing = moorage_cli("mirror", "cancel", "ops/cli", env=env)
        assert missing.returncode != 0
        assert "404" in missing.stderr
