"""A standalone `moorage worker --metrics-port P` serves /metrics and /health/instance.

The worker runs as a real process (SQLite + filesystem) with one due mirror whose upstream
cannot be reached, so the scrape shows Quay's mirror metrics fed by an actual sync attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from argon2 import PasswordHasher
from prometheus_client.parser import text_string_to_metric_families

from moorage.app import create_app
from moorage.auth import passwords
from moorage.auth import scopes as sc
from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.db.migrate import upgrade
from moorage.services.audit import Actor
from tests.api.mirror.conftest import mirror_body
from tests.support.server import HOST, free_port, stop_process

QUAY_MIRROR_METRICS = {
    "quay_repository_mirror_pending_tags",
    "quay_repository_mirror_last_sync_status",
    "quay_repository_mirror_sync_complete",
    "quay_repository_mirror_sync_failures",
    "quay_repository_mirror_last_sync_timestamp",
    "quay_repository_mirror_sync_duration_seconds",
    "quay_repository_mirror_workers_active",
    "quay_repository_rows_unmirrored",
}
Samples = dict[str, list[tuple[dict[str, str], float]]]


def _config(tmp_path: Path) -> dict[str, Any]:
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"],
        "REPO_MIRROR_INTERVAL": 1,
        "DATABASE_SECRET_KEY": "worker-metrics-test-key",
        "SECRET_KEY": "worker-metrics-test-secret",
    }


async def _seed(config: dict[str, Any]) -> None:
    """User ``owner``, robot ``owner+bot`` and a mirror of ``owner/app`` that is due now."""
    settings = load_settings(None, **config)
    db = Database(settings.database_url)
    try:
        await upgrade(db)
        app = create_app(settings, database=db)
        async with app.router.lifespan_context(app):
            accounts = app.state.accounts
            account = await accounts.create_user("owner", "owner password", None, Actor.system())
            actor = Actor(accounts.principal_for(account))
            await accounts.create_robot("owner", "bot", None, actor)
            created_token = await accounts.create_token(account.id, "t", list(sc.ALL_SCOPES), actor)
            token = created_token.secret
            headers = {"Authorization": f"Bearer {token}"}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://reg.test") as c:
                created = await c.post(
                    "/api/v1/repository",
                    json={"namespace": "owner", "repository": "app", "visibility": "private"},
                    headers=headers,
                )
                assert created.status_code == 201, created.text
                body = mirror_body(
                    robot_username="owner+bot",
                    external_reference="127.0.0.1:9/upstream/app",  # nothing listens there
                    sync_start_date="2001-01-01T00:00:00Z",
                )
                response = await c.post(
                    "/api/v1/repository/owner/app/mirror", json=body, headers=headers
                )
                assert response.status_code == 201, response.text
    finally:
        await db.dispose()


@contextlib.contextmanager
def run_worker(
    config: dict[str, Any], tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`moorage worker --metrics-port P` on a free port; yields (base URL, process)."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "moorage",
        "worker",
        "--config",
        str(config_path),
        "--metrics-host",
        HOST,
        "--metrics-port",
        str(port),
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health/instance", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield url, process
    finally:
        stop_process(process)


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        samples.setdefault(family.name, [])
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def test_worker_serves_metrics_and_health(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    config = _config(tmp_path)
    asyncio.run(_seed(config))
    with run_worker(config, tmp_path) as (url, process):
        health = httpx.get(f"{url}/health/instance", timeout=10)
        assert health.json() == {
            "data": {"services": {"process": True, "database": True, "storage": True}},
            "status_code": 200,
        }
        assert httpx.get(f"{url}/health/endtoend", timeout=10).status_code == 200
        assert httpx.get(f"{url}/v2/", timeout=5).status_code == 404  # no registry here

        # The due mirror is claimed and its sync fails (nothing listens upstream).
        deadline = time.monotonic() + 30
        while True:
            samples = scrape(url)
            failures = samples.get("quay_repository_mirror_sync_failures_total", [])
            if failures:
                break
            assert time.monotonic() < deadline, "no failed sync in the worker's metrics"
            time.sleep(0.2)
        assert samples.keys() >= QUAY_MIRROR_METRICS, QUAY_MIRROR_METRICS - samples.keys()
        assert [labels["namespace"] for labels, _ in failures] == ["owner"]
        assert samples["quay_repository_mirror_workers_active"] == [({}, 1.0)]
        statuses = samples["quay_repository_mirror_last_sync_status"]
        assert any(labels["repository"] == "app" for labels, _ in statuses)
        # Storage and database latency of the worker are measured too.
        assert any(v > 0 for _, v in samples["moorage_db_statement_duration_seconds_count"])

        stop_process(process)
        assert process.returncode == 0
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/metrics", timeout=2)


def test_a_busy_metrics_port_is_a_clear_error(tmp_path: Path) -> None:
    """A taken port is a one-line error, not a traceback."""
    config = _config(tmp_path)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "moorage",
                "worker",
                "--config",
                str(config_path),
                "--metrics-port",
                str(port),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
    assert result.returncode == 1
    assert f"Error: worker metrics: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
