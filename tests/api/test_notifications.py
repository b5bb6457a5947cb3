"""Repository notifications: Quay's API (CRUD, validation, permissions) and the delivery queue
(fan-out of audit events, test deliveries, retries, failure counting, SSRF at delivery, claims
by several deliverers), with webhook receivers on 127.0.0.1. The sync-driven path is covered by
tests/integration/test_mirror_notifications.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from moorage.config import Settings
from moorage.db.models import DeliveryStatus, NotificationDelivery, RepositoryNotification
from moorage.db.queries.notifications import NotificationQueries
from moorage.mirror.ssrf import SsrfGuard
from moorage.services.audit import record
from moorage.services.notification_delivery import NotificationDeliverer
from tests.api.conftest import World
from tests.support.tlscerts import make_test_pki
from tests.support.webhook import run_receiver

pytestmark = pytest.mark.anyio
NOTIFS = "/api/v1/repository/acme/app/notification/"
FAILED = "repo_mirror_sync_failed"
STARTED = "repo_mirror_sync_started"


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {"SSRF_ALLOWED_HOSTS": ["hooks.example", "127.0.0.0/8"]}


def body(url: str = "https://hooks.example/x?token=s3cret", **extra: Any) -> dict[str, Any]:
    return {
        "event": FAILED,
        "method": "webhook",
        "config": {"url": url},
        "eventConfig": {},
        **extra,
    }


async def create(world: World, payload: dict[str, Any], repo: str = "acme/app") -> dict[str, Any]:
    response = await world.client.post(
        f"/api/v1/repository/{repo}/notification/", json=payload, headers=world.auth("alice")
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def deliverer(
    world: World, owner: str = "test", ssrf: SsrfGuard | None = None, **overrides: Any
) -> NotificationDeliverer:
    settings: Settings = world.app.state.settings
    values = {"NOTIFICATION_RETRY_BACKOFF_SECONDS": 0.05, **overrides}
    return NotificationDeliverer(
        settings.model_copy(update=values),
        world.db,
        ssrf or world.app.state.notifications.ssrf,
        owner,
    )


async def drain(
    worker: NotificationDeliverer, done: Callable[[], Awaitable[bool]], timeout: float = 15
) -> None:
    """Poll ``worker`` until ``done()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    async with worker.client() as http:
        while True:
            await worker.poll_once(http)
            if await done():
                return
            assert time.monotonic() < deadline, "deliveries did not finish in time"
            await asyncio.sleep(0.03)


async def deliveries(world: World, uuid: str) -> list[NotificationDelivery]:
    async with world.db.transaction(readonly=True) as session:
        stmt = select(RepositoryNotification.id).where(RepositoryNotification.uuid == uuid)
        notification_id = (await session.execute(stmt)).scalar_one()
        return list(await NotificationQueries(session).deliveries(notification_id))


async def finished(world: World, uuid: str, count: int) -> bool:
    rows = await deliveries(world, uuid)
    return len(rows) >= count and all(r.status != DeliveryStatus.PENDING for r in rows)


async def test_create_list_get_reset_delete(world: World) -> None:
    auth = world.auth("alice")
    created = await create(world, body(title="ops"))
    assert set(created) == {
        "id",
        "uuid",
        "title",
        "event",
        "method",
        "config",
        "event_config",
        "number_of_failures",
    }
    assert created["title"] == "ops"
    assert created["event"] == FAILED
    assert created["method"] == "webhook"
    assert created["config"] == {"url": "https://hooks.example/x?token=s3cret"}
    assert created["event_config"] == {}
    assert created["number_of_failures"] == 0
    uuid = created["uuid"]

    listed = await world.client.get(NOTIFS, headers=auth)
    assert listed.status_code == 200
    assert listed.json() == {"notifications": [created]}
    one = await world.client.get(f"{NOTIFS}{uuid}", headers=auth)
    assert one.status_code == 200
    assert one.json() == created

    reset = await world.client.post(f"{NOTIFS}{uuid}", headers=auth)
    assert reset.status_code == 204
    tested = await world.client.post(f"{NOTIFS}{uuid}/test", headers=auth)
    assert tested.status_code == 200
    assert tested.json() == {}
    queued = await deliveries(world, uuid)
    assert [(d.event, d.is_test, d.status) for d in queued] == [(FAILED, True, "pending")]
    assert queued[0].payload == {
        "repository": "acme/app",
        "namespace": "acme",
        "name": "app",
        "docker_url": "reg.test/acme/app",
        "homepage": "http://reg.test/ui/repository/acme/app",
        "message": "TEST NOTIFICATION",
    }

    deleted = await world.client.delete(f"{NOTIFS}{uuid}", headers=auth)
    assert deleted.status_code == 204
    assert (await world.client.get(f"{NOTIFS}{uuid}", headers=auth)).status_code == 404
    again = await world.client.delete(f"{NOTIFS}{uuid}", headers=auth)
    assert again.status_code == 400
    assert again.json()["detail"] == f"No repository notification found for: acme, app, {uuid}"
    for verb in ("", "/test"):
        missing = await world.client.post(f"{NOTIFS}{uuid}{verb}", headers=auth)
        assert missing.status_code == 400, missing.text
    assert (await world.client.get(NOTIFS, headers=auth)).json() == {"notifications": []}

    logs = await world.client.get("/api/v1/repository/acme/app/logs", headers=auth)
    assert logs.status_code == 200
    kinds = [entry["kind"] for entry in logs.json()["logs"]]
    for kind in ("add_repo_notification", "reset_repo_notification", "delete_repo_notification"):
        assert kind in kinds
    assert "s3cret" not in logs.text


INVALID: list[tuple[Any, str]] = [
    (None, "Missing JSON body"),
    ({"method": "webhook", "config": {}, "eventConfig": {}}, "'event' is a required property"),
    (body(event="repo_push"), "Unsupported event 'repo_push'"),
    (body(method="email"), "Unsupported method 'email': Moorage supports webhook"),
    ({**body(), "config": {}}, "Missing webhook URL"),
    ({**body(), "config": {"url": 5}}, "Missing webhook URL"),
    ({**body(), "config": "x"}, "'x' is not of type 'object'"),
    ({**body(), "eventConfig": []}, "is not of type 'object'"),
    (body("ftp://hooks.example/x"), "only http:// and https:// URLs"),
    (body("https:///x"), "it has no host"),
    (body("https://hooks.example:99999/x"), "Invalid webhook URL"),
    (body("https://hooks.example/a b"), "spaces or control characters"),
    (body("http://10.1.2.3/hook"), "Invalid webhook URL: the host is not allowed"),
    (body("http://169.254.169.254/latest"), "the host is not allowed"),
    (body("http://localhost/hook"), "the host is not allowed"),
    (body("http://[::1]:8080/hook"), "the host is not allowed"),
    ({**body(), "config": {"url": "https://hooks.example/x", "template": "{}"}}, "templates"),
    (body(title="t" * 256), "title must be at most 255"),
    (body(title=5), "5 is not of type 'string'"),
    ({**body(), "eventConfig": {"x": "y" * 9000}}, "eventConfig must be at most"),
]


async def test_validation(world: World) -> None:
    """Every invalid body: a 400 in the project's error shape naming the problem; nothing made."""
    for payload, fragment in INVALID:
        response = await world.client.post(NOTIFS, json=payload, headers=world.auth("alice"))
        assert response.status_code == 400, (payload, response.text)
        assert fragment in response.json()["detail"], (payload, response.text)
        assert response.json()["error_type"] == "invalid_request"
    listed = await world.client.get(NOTIFS, headers=world.auth("alice"))
    assert listed.json() == {"notifications": []}


async def test_permissions_and_other_repositories(world: World) -> None:
    created = await create(world, body())
    uuid = created["uuid"]
    for user, status in (("bob", 403), ("rita", 403), ("eve", 403), (None, 401)):
        headers = world.auth(user) if user else {}
        for method, path, payload in (
            ("GET", NOTIFS, None),
            ("POST", NOTIFS, body()),
            ("GET", f"{NOTIFS}{uuid}", None),
            ("DELETE", f"{NOTIFS}{uuid}", None),
            ("POST", f"{NOTIFS}{uuid}", None),
            ("POST", f"{NOTIFS}{uuid}/test", None),
        ):
            response = await world.client.request(
                method, path, headers=headers, **({"json": payload} if payload else {})
            )
            assert response.status_code == status, (user, method, path, response.text)
    # A notification is only reachable through its own repository.
    await world.create_repo("acme/other")
    other = await create(world, body(), repo="acme/other")
    auth = world.auth("alice")
    assert (await world.client.get(f"{NOTIFS}{other['uuid']}", headers=auth)).status_code == 404
    assert (await world.client.delete(f"{NOTIFS}{other['uuid']}", headers=auth)).status_code == 400
    # NUL characters in a path are refused before routing, for every /api/v1 route.
    assert (await world.client.get(f"{NOTIFS}%00", headers=auth)).status_code == 400
    missing = await world.client.get("/api/v1/repository/acme/nope/notification/", headers=auth)
    assert missing.status_code == 404
    # The superuser administers every repository.
    listed = await world.client.get(NOTIFS, headers=world.auth("admin"))
    assert [n["uuid"] for n in listed.json()["notifications"]] == [uuid]
    # Deleting the repository deletes its notifications.
    gone = await world.client.delete("/api/v1/repository/acme/other", headers=auth)
    assert gone.status_code == 204
    await world.create_repo("acme/other")
    listed = await world.client.get("/api/v1/repository/acme/other/notification/", headers=auth)
    assert listed.json() == {"notifications": []}


async def test_audit_events_fan_out_and_test_deliveries(world: World) -> None:
    with run_receiver() as receiver:
        failed = await create(world, body(receiver.url("/failed")))
        started = await create(world, body(receiver.url("/started"), event=STARTED))
        disabled = await create(world, body(receiver.url("/disabled")))
        async with world.db.transaction() as session:
            queries = NotificationQueries(session)
            row = await queries.get(
                (await world.management.repositories.get("acme", "app")).id, disabled["uuid"]
            )
            assert row is not None
            for _ in range(3):
                await queries.add_failure(row.id)
            # What a sync records: one entry that notifies, one that does not.
            record(
                session,
                FAILED,
                None,
                namespace="acme",
                repository="app",
                metadata={"message": "'up/app' with tag pattern 'v1*': boom", "stderr": "x"},
            )
            record(session, "repo_mirror_sync_tag_failed", None, namespace="acme", repository="app")
        worker = deliverer(world)
        await drain(worker, lambda: finished(world, failed["uuid"], 1))
        got = await receiver.wait_delivered(1)
        assert len(got) == 1
        assert got[0].path == "/failed"
        assert got[0].headers["Content-Type"] == "application/json"
        assert got[0].headers["X-Moorage-Event"] == FAILED
        assert got[0].body == {
            "repository": "acme/app",
            "namespace": "acme",
            "name": "app",
            "docker_url": "reg.test/acme/app",
            "homepage": "http://reg.test/ui/repository/acme/app",
            "message": "'up/app' with tag pattern 'v1*': boom",
        }
        assert await deliveries(world, started["uuid"]) == []
        assert await deliveries(world, disabled["uuid"]) == []

        response = await world.client.post(
            f"{NOTIFS}{started['uuid']}/test", headers=world.auth("alice")
        )
        assert response.status_code == 200
        await drain(worker, lambda: finished(world, started["uuid"], 1))
        got = await receiver.wait_delivered(2)
        assert got[1].path == "/started"
        assert got[1].body["message"] == "TEST NOTIFICATION"
        assert got[1].headers["X-Moorage-Event"] == STARTED


async def test_retries_failure_count_disable_and_reset(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moorage")
    auth = world.auth("alice")
    with run_receiver([500] * 9) as receiver:
        created = await create(world, body(receiver.url("/hook?token=s3cret")))
        uuid = created["uuid"]
        worker = deliverer(world, NOTIFICATION_RETRY_ATTEMPTS=3)
        for round_ in range(1, 4):  # three deliveries fail every attempt: disabled (Quay)
            assert (
                await world.client.post(f"{NOTIFS}{uuid}/test", headers=auth)
            ).status_code == 200
            await drain(worker, lambda n=round_: finished(world, uuid, n))
            rows = await deliveries(world, uuid)
            assert rows[-1].status == "failed"
            assert rows[-1].attempts == 3
            assert rows[-1].last_error == "HTTP 500"
            one = await world.client.get(f"{NOTIFS}{uuid}", headers=auth)
            assert one.json()["number_of_failures"] == round_
        assert len(receiver.snapshot()) == 9
        # Disabled: the next delivery is dropped without a request.
        assert (await world.client.post(f"{NOTIFS}{uuid}/test", headers=auth)).status_code == 200
        await drain(worker, lambda: finished(world, uuid, 4))
        assert (await deliveries(world, uuid))[-1].status == "dropped"
        assert len(receiver.snapshot()) == 9
        # Reset (Quay's POST on the notification) enables it again; the receiver now answers 200.
        assert (await world.client.post(f"{NOTIFS}{uuid}", headers=auth)).status_code == 204
        assert (await world.client.post(f"{NOTIFS}{uuid}/test", headers=auth)).status_code == 200
        await drain(worker, lambda: finished(world, uuid, 5))
        assert (await deliveries(world, uuid))[-1].status == "delivered"
        assert len(receiver.delivered()) == 1
    assert "s3cret" not in caplog.text
    assert f"http://127.0.0.1:{receiver.port}" in caplog.text  # scheme, host and port only


async def test_delivery_applies_the_ssrf_policy(world: World) -> None:
    with run_receiver() as receiver:
        created = await create(world, body(receiver.url()))
        uuid = created["uuid"]
        # A deliverer whose policy no longer allows loopback (e.g. SSRF_ALLOWED_HOSTS changed).
        strict = deliverer(world, ssrf=SsrfGuard([]), NOTIFICATION_RETRY_ATTEMPTS=1)
        response = await world.client.post(f"{NOTIFS}{uuid}/test", headers=world.auth("alice"))
        assert response.status_code == 200
        await drain(strict, lambda: finished(world, uuid, 1))
        rows = await deliveries(world, uuid)
        assert rows[0].status == "failed"
        assert rows[0].last_error == "Invalid webhook URL: the host is not allowed"
        assert receiver.snapshot() == []


async def test_https_receivers_are_verified(world: World, tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path)
    with run_receiver(tls=pki) as receiver:
        created = await create(world, body(receiver.url()))
        uuid = created["uuid"]
        auth = world.auth("alice")
        # Not trusted: the certificate's CA is unknown to the system store.
        untrusting = deliverer(world, NOTIFICATION_RETRY_ATTEMPTS=1)
        assert (await world.client.post(f"{NOTIFS}{uuid}/test", headers=auth)).status_code == 200
        await drain(untrusting, lambda: finished(world, uuid, 1))
        rows = await deliveries(world, uuid)
        assert (rows[0].status, rows[0].last_error) == ("failed", "ConnectError")
        assert receiver.snapshot() == []
        # Trusted through NOTIFICATION_CA_BUNDLE.
        trusting = deliverer(world, NOTIFICATION_CA_BUNDLE=str(pki.ca_cert))
        assert (await world.client.post(f"{NOTIFS}{uuid}/test", headers=auth)).status_code == 200
        await drain(trusting, lambda: finished(world, uuid, 2))
        assert (await deliveries(world, uuid))[-1].status == "delivered"
        assert len(receiver.delivered()) == 1


async def test_one_delivery_is_claimed_once_and_in_order(world: World) -> None:
    with run_receiver() as receiver:
        created = await create(world, body(receiver.url()))
        uuid = created["uuid"]
        for _ in range(3):
            response = await world.client.post(f"{NOTIFS}{uuid}/test", headers=world.auth("alice"))
            assert response.status_code == 200
        workers = [deliverer(world, owner=f"w{i}") for i in range(3)]
        deadline = time.monotonic() + 15
        while not await finished(world, uuid, 3):
            assert time.monotonic() < deadline
            async with contextlib.AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(w.client()) for w in workers]
                await asyncio.gather(
                    *(w.poll_once(c) for w, c in zip(workers, clients, strict=True))
                )
        got = await receiver.wait_delivered(3)
        assert len(receiver.snapshot()) == 3
        ids = [int(r.headers["X-Moorage-Delivery"]) for r in got]
        assert ids == sorted(ids)
        assert len(set(ids)) == 3
