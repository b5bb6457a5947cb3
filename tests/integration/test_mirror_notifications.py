"""Mirror syncs from a real docker-registry notify webhooks on 127.0.0.1 (issue #8 item 4).

The worker and the delivery loop run in-process (as inside `moorage serve`); notifications are
configured through Quay's API. Covers: started + success of a sync, failed of a sync whose
upstream repository does not exist, a receiver that answers 500 twice before 200, and the test
endpoint; and a separate `moorage worker` process delivering (the loop runs there too).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from moorage.db.engine import Database
from moorage.db.queries.notifications import NotificationQueries
from tests.integration.conftest import Clients
from tests.integration.mirror_helpers import (
    InProcessMoorage,
    create_mirror,
    in_process_moorage,
    mirror_config,
    push_upstream,
    run_worker_process,
    sync_and_wait,
    wait_for,
)
from tests.support.ocilayout import write_image
from tests.support.server import ServerHandle, _plain, run_docker_registry
from tests.support.webhook import run_receiver

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
NOTIFICATIONS = "/api/v1/repository/admin/app/notification/"


@pytest.fixture
def upstream(tmp_path: Path, clients: Clients, docker_registry_binary: str) -> Any:
    """docker-registry holding library/app:v1 (library/missing does not exist)."""
    layout = tmp_path / "layout"
    write_image(layout, "v1", layer_sizes=(8_000,), rng=random.Random(41))
    with run_docker_registry(tmp_path) as handle:
        push_upstream(clients, handle, layout, "v1", "library/app")
        yield handle


@pytest.fixture
async def moorage(base_config: dict[str, Any], database: Database) -> Any:
    async with in_process_moorage(
        base_config,
        database,
        NOTIFICATION_POLL_SECONDS=0.1,
        NOTIFICATION_RETRY_BACKOFF_SECONDS=0.2,
        SERVER_HOSTNAME="registry.test",
    ) as handle:
        yield handle


async def notify(client: httpx.AsyncClient, event: str, url: str) -> str:
    response = await client.post(
        NOTIFICATIONS,
        json={
            "event": event,
            "method": "webhook",
            "config": {"url": url},
            "eventConfig": {},
            "title": event,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["uuid"])


def expected(message: str) -> dict[str, str]:
    return {
        "repository": "admin/app",
        "namespace": "admin",
        "name": "app",
        "docker_url": "registry.test/admin/app",
        "homepage": "http://registry.test/ui/repository/admin/app",
        "message": message,
    }


async def test_sync_events_reach_webhooks(
    upstream: ServerHandle, moorage: InProcessMoorage
) -> None:
    client = moorage.client
    source = f"{upstream.host}/library/app"
    pattern = f"'{source}' with tag pattern 'v*'"
    await create_mirror(client, source, "app", ["v*"])
    with run_receiver() as hooks, run_receiver([500, 500]) as flaky:
        for event in ("repo_mirror_sync_started", "repo_mirror_sync_success"):
            await notify(client, event, hooks.url(f"/{event}"))
        await notify(client, "repo_mirror_sync_failed", hooks.url("/repo_mirror_sync_failed"))
        flaky_uuid = await notify(client, "repo_mirror_sync_success", flaky.url("/flaky"))

        # A successful sync: started and success. They belong to two notifications, whose
        # deliveries run independently, so either may arrive first.
        result = await sync_and_wait(client, "app")
        assert result["sync_status"] == "SUCCESS", result
        got = sorted(await hooks.wait_delivered(2), key=lambda r: r.path)
        assert [r.path for r in got] == ["/repo_mirror_sync_started", "/repo_mirror_sync_success"]
        assert got[0].body == expected(pattern)
        assert got[1].body == expected(pattern)
        assert all(r.headers["Content-Type"] == "application/json" for r in got)

        # The flaky receiver answered 500 twice: the third attempt delivered the event.
        flaky_got = await flaky.wait_delivered(1)
        assert [r.status for r in flaky.snapshot()] == [500, 500, 200]
        assert flaky_got[0].body == expected(pattern)
        ids = {r.headers["X-Moorage-Delivery"] for r in flaky.snapshot()}
        assert len(ids) == 1  # one delivery, three attempts
        flaky_note = await client.get(f"{NOTIFICATIONS}{flaky_uuid}")
        assert flaky_note.json()["number_of_failures"] == 0

        # /metrics counts every attempt's outcome: two retries, then both success deliveries.
        async def counted() -> bool:
            text = (await client.get("/metrics")).text
            success = 'moorage_notification_attempts_total{event="repo_mirror_sync_success"'
            return (
                f'{success},outcome="retry"}} 2.0' in text
                and f'{success},outcome="delivered"}} 2.0' in text
            )

        await wait_for(counted, 10, "notification attempts counted in /metrics")

        # The test endpoint queues Quay's sample data.
        listed = (await client.get(NOTIFICATIONS)).json()["notifications"]
        started = next(n for n in listed if n["event"] == "repo_mirror_sync_started")
        response = await client.post(f"{NOTIFICATIONS}{started['uuid']}/test")
        assert response.status_code == 200
        got = await hooks.wait_delivered(3)
        assert got[2].path == "/repo_mirror_sync_started"
        assert got[2].body == expected("TEST NOTIFICATION")

        # A failing sync (the upstream repository does not exist): started, then failed.
        changed = await client.put(
            "/api/v1/repository/admin/app/mirror",
            json={"external_reference": f"{upstream.host}/library/missing"},
        )
        assert changed.status_code == 201, changed.text
        result = await sync_and_wait(client, "app")
        assert result["sync_status"] == "FAIL", result
        got = await hooks.wait_delivered(5)
        # Two notifications: each delivers its own events in order, but not in order with
        # each other.
        assert sorted(r.path for r in got[3:]) == [
            "/repo_mirror_sync_failed",
            "/repo_mirror_sync_started",
        ]
        failed = next(r.body for r in got[3:] if r.path == "/repo_mirror_sync_failed")
        assert failed["repository"] == "admin/app"
        assert failed["message"].startswith(f"'{upstream.host}/library/missing' with tag pattern")
        assert len(failed["message"]) > len(f"'{upstream.host}/library/missing' with tag pattern")
        # No success event this time, so the flaky receiver heard nothing more.
        assert len(flaky.snapshot()) == 3

    async def drained() -> bool:
        async with moorage.db.transaction(readonly=True) as session:
            return not await NotificationQueries(session).has_events()

    await wait_for(drained, 10, "an empty notification outbox")


async def test_a_worker_process_delivers(
    base_config: dict[str, Any], database: Database, tmp_path: Path
) -> None:
    """`moorage worker` runs the delivery loop: it sends a test queued through the API."""
    overrides = {"NOTIFICATION_POLL_SECONDS": 0.2}
    with run_receiver() as hook:
        async with in_process_moorage(base_config, database, worker=False, **overrides) as api:
            response = await api.client.post(
                "/api/v1/repository",
                json={"repository": "app", "namespace": "admin", "visibility": "private"},
            )
            assert response.status_code == 201, response.text
            uuid = await notify(api.client, "repo_mirror_sync_failed", hook.url())
            response = await api.client.post(f"{NOTIFICATIONS}{uuid}/test")
            assert response.status_code == 200, response.text
        config_path = tmp_path / "worker.yaml"
        config_path.write_text(yaml.safe_dump(_plain(mirror_config(base_config, **overrides))))
        log_path = tmp_path / "worker.log"
        with run_worker_process(config_path, log_path):
            got = await hook.wait_delivered(1, timeout=30)
        assert got[0].body["message"] == "TEST NOTIFICATION"
        assert got[0].body["repository"] == "admin/app"
        assert "notification delivery" in log_path.read_text()
