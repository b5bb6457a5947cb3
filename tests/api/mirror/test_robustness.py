"""No 500 on bad input (Moorage departure 2): values that used to reach the database and fail
there, concurrent creates, dates at the edges of the calendar, undecryptable credentials.
"""

from __future__ import annotations

import asyncio

import pytest

from moorage.db.models import SyncStatus
from tests.api.mirror.conftest import (
    LOCAL_HOSTS,
    LOCAL_SOURCE,
    NS,
    FakeDns,
    MirrorEnv,
    assert_error,
    assert_schema_error,
    mirror_body,
)

pytestmark = pytest.mark.anyio

# Encrypted ("v0$$" + base64(nonce 13 + ciphertext + tag 16)) into VARCHAR(4096) / VARCHAR(9000).
USERNAME_CAPACITY = 3040
PASSWORD_CAPACITY = 6718
LOCK_TIMEOUT = 5.0  # seconds another writer may wait while a mirror's source is being resolved


@pytest.mark.parametrize("key", ["sync_interval", "skopeo_timeout_interval"])
async def test_interval_maximum(env: MirrorEnv, key: str) -> None:
    response = await env.post(mirror_body(**{key: 2**31}))
    assert_schema_error(response, "2147483648 is greater than the maximum of 2147483647")
    response = await env.post(mirror_body(**{key: 2**64}))
    assert_schema_error(response, "18446744073709551616 is greater than the maximum of 2147483647")
    await env.create_mirror(**{key: 2**31 - 1})
    assert (await env.mirror())[key] == 2**31 - 1
    assert (await env.put({key: 2**40})).status_code == 400


async def test_longest_credentials_fit(env: MirrorEnv) -> None:
    user, password = "u" * USERNAME_CAPACITY, "p" * PASSWORD_CAPACITY
    await env.create_mirror(external_registry_username=user, external_registry_password=password)
    assert (await env.mirror())["external_registry_username"] == user
    body = {"external_registry_username": "é" * (USERNAME_CAPACITY // 2)}
    assert (await env.put(body)).status_code == 201


@pytest.mark.parametrize(
    ("field", "value", "capacity"),
    [
        ("external_registry_username", "u" * (USERNAME_CAPACITY + 1), USERNAME_CAPACITY),
        ("external_registry_username", "é" * (USERNAME_CAPACITY // 2 + 1), USERNAME_CAPACITY),
        ("external_registry_password", "p" * (PASSWORD_CAPACITY + 1), PASSWORD_CAPACITY),
    ],
    ids=["username", "username-multibyte", "password"],
)
async def test_too_long_credentials(env: MirrorEnv, field: str, value: str, capacity: int) -> None:
    text = f"{field} must be at most {capacity} bytes long"
    credentials = {"external_registry_username": "u", field: value}
    assert_error(await env.post(mirror_body(**credentials)), 400, text)
    assert await env.mirror_count() == 0
    await env.create_mirror()
    assert_error(await env.put(credentials), 400, text)


@pytest.mark.parametrize("reference", ["quay.io/x\u0000", "quay.io/x\u007f", "quay.io/\u0001x"])
async def test_control_characters_in_reference(env: MirrorEnv, reference: str) -> None:
    response = await env.post(mirror_body(external_reference=reference))
    assert_error(response, 400, "External registry reference contains an invalid character")


@pytest.mark.parametrize("robot", [f"{NS}+bot\u0000", "\u0000+bot"])
async def test_control_characters_in_robot(env: MirrorEnv, robot: str) -> None:
    response = await env.post(mirror_body(robot_username=robot))
    assert_error(response, 400, "Could not find robot with specified username")


async def test_concurrent_creates(env: MirrorEnv) -> None:
    responses = await asyncio.gather(*(env.post(mirror_body()) for _ in range(4)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409], [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["detail"] == (
                f"Mirror configuration already exits for repository {NS}/mirrored"
            )
    assert await env.mirror_count() == 1
    assert await env.repo_state() == "MIRROR"


@pytest.mark.parametrize(
    "date", ["0001-01-01T00:00:00Z", "0999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"]
)
@pytest.mark.parametrize("config_overrides", [LOCAL_HOSTS])
async def test_calendar_edges_round_trip(env: MirrorEnv, date: str) -> None:
    await env.create_mirror(sync_start_date=date, is_enabled=False, external_reference=LOCAL_SOURCE)
    first = await env.mirror()
    assert first["sync_start_date"] == date
    assert (await env.put(first)).status_code == 201
    assert await env.mirror() == first


async def test_undecryptable_username_is_reported_not_500(env: MirrorEnv) -> None:
    """Quay bug B1: a NameError turned this into a 500."""
    await env.create_mirror(external_registry_username="someone")
    row = await env.config_row()
    assert row is not None
    async with env.db.transaction() as session:
        stored = await session.get(type(row), row.id)
        assert stored is not None
        stored.external_registry_username = "v0$$bm90IHJlYWxseSBlbmNyeXB0ZWQgYXQgYWxs"
    assert (await env.mirror())["external_registry_username"] == "(invalid. please re-enter)"


# --- no database lock held while the source's DNS lookup runs ---------------------------------


async def wait_until_waiting(dns: FakeDns, host: str) -> None:
    await asyncio.wait_for(dns.asked[host].wait(), 10)


async def test_post_holds_no_write_lock_during_dns(env: MirrorEnv, dns: FakeDns) -> None:
    """A slow DNS answer must not stall every other write (SQLite's BEGIN IMMEDIATE lock)."""
    gate = dns.hold("slow.example")
    pending = asyncio.create_task(env.post(mirror_body(external_reference="slow.example/x")))
    try:
        await wait_until_waiting(dns, "slow.example")
        other = env.http.post(
            "/api/v1/repository",
            json={"namespace": NS, "repository": "other", "visibility": "private"},
            headers=env.auth(),
        )
        response = await asyncio.wait_for(other, LOCK_TIMEOUT)
        assert response.status_code == 201
    finally:
        gate.set()
    assert (await pending).status_code == 201
    assert (await env.mirror())["external_reference"] == "slow.example/x"


async def test_put_holds_no_lock_during_dns(env: MirrorEnv, dns: FakeDns) -> None:
    """Neither the database (SQLite) nor the mirror's row (PostgreSQL) stays locked while the
    new source is resolved: a worker's write on the row goes through meanwhile."""
    await env.create_mirror()
    gate = dns.hold("slow.example")
    pending = asyncio.create_task(env.put({"external_reference": "slow.example/x"}))
    try:
        await wait_until_waiting(dns, "slow.example")
        await asyncio.wait_for(env.set_status(SyncStatus.SUCCESS), LOCK_TIMEOUT)
    finally:
        gate.set()
    assert (await pending).status_code == 201
    got = await env.mirror()
    assert (got["external_reference"], got["sync_status"]) == ("slow.example/x", "SUCCESS")


async def test_put_dns_failure_after_404_checks(env: MirrorEnv) -> None:
    # Without a mirror the answer is 404, even for a source that cannot be resolved.
    assert_error(await env.put({"external_reference": "nx.example/x"}), 404, "Not Found")
