"""sync-now, sync-cancel and the run history: status transitions of §4.9 seen through the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from moorage.db.models import MirrorRun, SyncStatus
from tests.api.mirror.conftest import LOCAL_HOSTS, LOCAL_SOURCE, NS, MirrorEnv, assert_error

pytestmark = pytest.mark.anyio


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return LOCAL_HOSTS


@pytest.fixture
async def mirror(env: MirrorEnv) -> MirrorEnv:
    await env.create_mirror(external_reference=LOCAL_SOURCE)
    return env


async def test_sync_now(mirror: MirrorEnv) -> None:
    before = await mirror.mirror()
    response = await mirror.post(path="/sync-now")
    assert response.status_code == 204
    assert response.content == b""
    after = await mirror.mirror()
    assert after["sync_status"] == "SYNC_NOW"
    assert after["sync_retries_remaining"] >= 1
    assert after["sync_expiration_date"] is None
    # sync-now touches neither the schedule nor is_enabled.
    assert after["sync_start_date"] == before["sync_start_date"]
    assert after["is_enabled"] is True


async def test_sync_now_twice(mirror: MirrorEnv) -> None:
    assert (await mirror.post(path="/sync-now")).status_code == 204
    assert (await mirror.post(path="/sync-now")).status_code == 204
    assert (await mirror.mirror())["sync_status"] == "SYNC_NOW"


async def test_sync_now_while_syncing_is_404(mirror: MirrorEnv) -> None:
    await mirror.set_status(SyncStatus.SYNCING)
    assert_error(await mirror.post(path="/sync-now"), 404, "Not Found")
    assert (await mirror.mirror())["sync_status"] == "SYNCING"


@pytest.mark.parametrize(
    ("status", "retries", "expected_retries"),
    [
        (SyncStatus.CANCEL, 0, 1),
        (SyncStatus.FAIL, 2, 2),
        (SyncStatus.SUCCESS, 3, 3),
        (SyncStatus.NEVER_RUN, 3, 3),
    ],
)
async def test_sync_now_retries_at_least_one(
    mirror: MirrorEnv, status: SyncStatus, retries: int, expected_retries: int
) -> None:
    await mirror.set_status(status, retries)
    assert (await mirror.post(path="/sync-now")).status_code == 204
    got = await mirror.mirror()
    assert (got["sync_status"], got["sync_retries_remaining"]) == ("SYNC_NOW", expected_retries)


async def test_sync_now_on_disabled_mirror(mirror: MirrorEnv) -> None:
    assert (await mirror.put({"is_enabled": False})).status_code == 201
    assert (await mirror.post(path="/sync-now")).status_code == 204
    got = await mirror.mirror()
    assert (got["sync_status"], got["is_enabled"]) == ("SYNC_NOW", False)


async def test_cancel_queued_sync(mirror: MirrorEnv) -> None:
    assert (await mirror.post(path="/sync-now")).status_code == 204
    response = await mirror.post(path="/sync-cancel")
    assert response.status_code == 204
    assert response.content == b""
    got = await mirror.mirror()
    assert (got["sync_status"], got["sync_retries_remaining"]) == ("CANCEL", 0)
    assert got["sync_expiration_date"] is None


async def test_cancel_running_sync(mirror: MirrorEnv) -> None:
    await mirror.set_status(SyncStatus.SYNCING)
    assert (await mirror.post(path="/sync-cancel")).status_code == 204
    got = await mirror.mirror()
    assert (got["sync_status"], got["sync_retries_remaining"]) == ("CANCEL", 0)
    # "cancel then sync-now" is the manual recovery path.
    assert (await mirror.post(path="/sync-now")).status_code == 204
    got = await mirror.mirror()
    assert (got["sync_status"], got["sync_retries_remaining"]) == ("SYNC_NOW", 1)


@pytest.mark.parametrize(
    "status", [SyncStatus.NEVER_RUN, SyncStatus.SUCCESS, SyncStatus.CANCEL, SyncStatus.FAIL]
)
async def test_cancel_when_not_syncing_is_404(mirror: MirrorEnv, status: SyncStatus) -> None:
    await mirror.set_status(status)
    assert_error(await mirror.post(path="/sync-cancel"), 404, "Not Found")
    assert (await mirror.mirror())["sync_status"] == status.name


@pytest.mark.parametrize("path", ["/sync-now", "/sync-cancel", "/runs"])
async def test_without_mirror_is_404(env: MirrorEnv, path: str) -> None:
    response = await (env.get(path) if path == "/runs" else env.post(path=path))
    assert_error(response, 404, "Not Found")


@pytest.mark.parametrize("path", ["/sync-now", "/sync-cancel"])
async def test_repository_missing_is_404(env: MirrorEnv, path: str) -> None:
    response = await env.http.post(
        f"/api/v1/repository/{NS}/nosuchrepo/mirror{path}", headers=env.auth()
    )
    assert_error(response, 404, "Not Found")


async def test_runs_empty(mirror: MirrorEnv) -> None:
    response = await mirror.get("/runs")
    assert response.status_code == 200
    assert response.json() == {"runs": [], "next_before": None}


@pytest.mark.parametrize("query", ["?limit=0", "?limit=201", "?before=0", "?limit=abc"])
async def test_runs_bad_query(mirror: MirrorEnv, query: str) -> None:
    response = await mirror.get(f"/runs{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == body["message"] == body["error_message"]


async def add_run(env: MirrorEnv, worker: str, **values: Any) -> None:
    row = await env.config_row()
    assert row is not None
    async with env.db.transaction() as session:
        session.add(MirrorRun(config_id=row.id, trigger="schedule", worker=worker, **values))


async def test_run_history_last_sync_last_error_current_sync(mirror: MirrorEnv) -> None:
    """Moorage extensions: finished runs feed last_sync/last_error and /runs, a running one
    feeds current_sync."""
    t0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    minute = dt.timedelta(minutes=1)
    await add_run(
        mirror, "w1", status="succeeded", started_at=t0, finished_at=t0 + minute,
        tags_total=3, tags_copied=2, tags_skipped=1, bytes_copied=1234,
    )  # fmt: skip
    await add_run(
        mirror, "w1", status="failed", started_at=t0 + 2 * minute, finished_at=t0 + 3 * minute,
        tags_total=3, tags_failed=3, error_kind="auth", error_message="401 from upstream",
    )  # fmt: skip
    await add_run(mirror, "w2", status="running", started_at=t0 + 4 * minute)
    got = await mirror.mirror()
    assert got["last_sync"]["status"] == "failed"
    assert got["last_sync"]["started"] == "2026-01-02T03:06:05Z"
    assert got["last_sync"]["finished"] == "2026-01-02T03:07:05Z"
    assert got["last_error"] == {
        "kind": "auth",
        "message": "401 from upstream",
        "time": "2026-01-02T03:07:05Z",
    }
    assert got["current_sync"]["status"] == "running"
    assert got["current_sync"]["finished"] is None

    runs = (await mirror.get("/runs")).json()
    assert [r["status"] for r in runs["runs"]] == ["running", "failed", "succeeded"]
    assert runs["next_before"] is None
    assert runs["runs"][2] == {
        "id": runs["runs"][2]["id"],
        "status": "succeeded",
        "trigger": "schedule",
        "started": "2026-01-02T03:04:05Z",
        "finished": "2026-01-02T03:05:05Z",
        "tags_total": 3,
        "tags_copied": 2,
        "tags_skipped": 1,
        "tags_failed": 0,
        "tags_deleted": 0,
        "bytes": 1234,
        "error_kind": None,
        "error_message": None,
    }
    page = (await mirror.get("/runs?limit=2")).json()
    assert [r["status"] for r in page["runs"]] == ["running", "failed"]
    assert page["next_before"] == page["runs"][-1]["id"]
    rest = (await mirror.get(f"/runs?limit=2&before={page['next_before']}")).json()
    assert [r["status"] for r in rest["runs"]] == ["succeeded"]
    assert rest["next_before"] is None


async def test_last_error_cleared_by_a_later_success(mirror: MirrorEnv) -> None:
    t0 = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    await add_run(
        mirror, "w", status="failed", started_at=t0, finished_at=t0,
        error_kind="timeout", error_message="slow",
    )  # fmt: skip
    await add_run(mirror, "w", status="succeeded", started_at=t0, finished_at=t0)
    got = await mirror.mirror()
    assert (got["last_sync"]["status"], got["last_error"], got["current_sync"]) == (
        "succeeded",
        None,
        None,
    )
