"""Failed password logins are throttled per username and per client address (issue #6 item 4).

Unit tests drive ``LoginThrottle`` with a fake clock, its counters in memory and in the database
(shared by API nodes) on both backends; the API tests check every login path —
``/v2/auth``, Basic credentials on ``/v2/`` and on ``/api/v1``, ``POST /api/v1/signin`` — for
429 + ``Retry-After`` in the right error shape, and that successful logins are never held back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from moorage.db.engine import Database
from moorage.db.models import LoginFailureCounter, LoginTrustedPair
from moorage.services.login_throttle import (
    DatabaseState,
    LoginThrottle,
    LoginThrottled,
    MemoryState,
    ThrottleState,
)
from tests.api.conftest import PASSWORD, World, basic

pytestmark = pytest.mark.anyio
PROBLEM_KEYS = {"detail", "error_message", "message", "error_type", "title", "type", "status"}
USER_LIMIT = 3
IP_LIMIT = 8


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["memory", "shared"])
def state_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_state(state_kind: str, database: Database) -> Callable[[], ThrottleState]:
    """The counters in process memory, or in the database (both backends) as API nodes share
    them with LOGIN_THROTTLE_SHARED."""
    if state_kind == "memory":
        return lambda: MemoryState(900)
    return lambda: DatabaseState(database, 900)


@pytest.fixture
def limiter_for(make_state: Callable[[], ThrottleState]) -> Callable[..., LoginThrottle]:
    def build(clock: FakeClock, **kw: Any) -> LoginThrottle:
        values: dict[str, Any] = {
            "user_failures": USER_LIMIT,
            "ip_failures": IP_LIMIT,
            "max_seconds": 60,
            "window_seconds": 900,
        }
        values.update(kw)
        return LoginThrottle(**values, state=make_state(), clock=clock)

    return build


Build = Callable[..., LoginThrottle]


# --- the limiter on its own ----------------------------------------------------------------------


async def test_backoff_doubles_up_to_the_maximum(limiter_for: Build) -> None:
    clock = FakeClock()
    limiter = limiter_for(clock, max_seconds=10)
    for _ in range(USER_LIMIT - 1):
        await limiter.failed("alice", "10.0.0.1")
        assert await limiter.retry_after("alice", "10.0.0.1") == 0
    waits = []
    for _ in range(6):
        await limiter.failed("alice", "10.0.0.1")
        wait = await limiter.retry_after("alice", "10.0.0.2")  # any address: the username waits
        waits.append(wait)
        clock.advance(wait)
        assert await limiter.retry_after("alice", "10.0.0.2") == 0
    assert waits == [1, 2, 4, 8, 10, 10]


async def test_check_raises_with_retry_after(limiter_for: Build) -> None:
    limiter = limiter_for(FakeClock())
    for _ in range(USER_LIMIT + 2):
        await limiter.failed("alice", None)
    with pytest.raises(LoginThrottled) as caught:
        await limiter.check("alice", None)
    assert caught.value.retry_after == 4
    assert "4 seconds" in caught.value.message
    await limiter.check("bob", None)  # others are not affected


async def test_success_resets_the_username(limiter_for: Build) -> None:
    limiter = limiter_for(FakeClock())
    for _ in range(USER_LIMIT - 1):
        await limiter.failed("alice", "10.0.0.1")
    await limiter.succeeded("alice", "10.0.0.1")
    for _ in range(USER_LIMIT - 1):
        await limiter.failed("alice", "10.0.0.1")
    assert await limiter.retry_after("alice", "10.0.0.1") == 0


async def test_counters_are_forgotten_after_the_window(limiter_for: Build) -> None:
    clock = FakeClock()
    limiter = limiter_for(clock, window_seconds=100)
    for _ in range(USER_LIMIT - 1):
        await limiter.failed("alice", None)
    clock.advance(101)
    await limiter.failed("alice", None)
    assert await limiter.retry_after("alice", None) == 0  # a fresh streak of one


async def test_address_limit_spares_users_who_signed_in_from_there(limiter_for: Build) -> None:
    clock = FakeClock()
    limiter = limiter_for(clock)
    await limiter.succeeded("ci", "10.0.0.9")  # a CI job signs in from the shared NAT address
    for i in range(IP_LIMIT):
        await limiter.failed(f"victim{i}", "10.0.0.9")  # password spraying from the same address
    assert await limiter.retry_after("newcomer", "10.0.0.9") == 1
    assert await limiter.retry_after("ci", "10.0.0.9") == 0
    assert await limiter.retry_after("newcomer", "10.0.0.10") == 0
    # The attacker's own successful login does not clear the address's counter.
    await limiter.succeeded("attacker", "10.0.0.9")
    assert await limiter.retry_after("victim99", "10.0.0.9") == 1
    # The exemption expires with the window.
    clock.advance(901)
    assert await limiter.retry_after("ci", "10.0.0.9") == 0


async def test_oauthtoken_counts_towards_the_address_only(limiter_for: Build) -> None:
    limiter = limiter_for(FakeClock())
    for _ in range(IP_LIMIT):
        await limiter.failed("$oauthtoken", "10.0.0.1")
    assert await limiter.retry_after("$oauthtoken", "10.0.0.2") == 0
    assert await limiter.retry_after("$oauthtoken", "10.0.0.1") == 1
    assert list(await limiter.state.counters([("ip", "10.0.0.1"), ("ip", "10.0.0.2")])) == [
        ("ip", "10.0.0.1")
    ]


async def test_zero_disables_and_memory_is_bounded() -> None:
    off = LoginThrottle(0, 0, 60, 900, clock=FakeClock())
    for _ in range(100):
        await off.failed("alice", "10.0.0.1")
    assert await off.retry_after("alice", "10.0.0.1") == 0
    assert len(MemoryState(900)) == 0
    state = MemoryState(900, max_entries=50)
    bounded = LoginThrottle(3, 3, 60, 900, state=state, clock=FakeClock())
    for i in range(500):
        await bounded.failed(f"user{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(state) == 50


async def test_api_nodes_share_the_counters(database: Database) -> None:
    """Two API nodes with LOGIN_THROTTLE_SHARED: failures are counted across both, and a
    username blocked on one is blocked on the other; so is a success's reset."""
    clock = FakeClock()
    node_a, node_b = (
        LoginThrottle(
            USER_LIMIT, IP_LIMIT, 60, 900, state=DatabaseState(database, 900), clock=clock
        )
        for _ in range(2)
    )
    await node_a.failed("alice", "10.0.0.1")
    await node_b.failed("alice", "10.0.0.2")
    assert await node_a.retry_after("alice", "10.0.0.3") == 0
    await node_a.failed("alice", "10.0.0.3")  # the third failure, on any node, blocks
    assert await node_b.retry_after("alice", "10.0.0.4") == 1
    with pytest.raises(LoginThrottled):
        await node_a.check("alice", None)
    clock.advance(1)
    await node_b.succeeded("alice", "10.0.0.4")
    await node_a.failed("alice", "10.0.0.1")
    assert await node_b.retry_after("alice", "10.0.0.1") == 0  # the success reset the streak


async def test_shared_counters_store_keyed_hashes_of_any_text(database: Database) -> None:
    """What was typed as a username (NUL, a pasted password, anything) is never stored as is,
    and PostgreSQL, which refuses NUL in text, takes every key."""
    clock = FakeClock()
    state = DatabaseState(database, 900, b"node secret")
    limiter = LoginThrottle(1, 100, 60, 900, state=state, clock=clock)
    typed = ["bo\x00b", "correct horse battery staple", "x" * 1000, "\udcff"]
    for text in typed:
        await limiter.failed(text, "10.0.0.\x001")
        assert await limiter.retry_after(text, None) == 1
    await limiter.succeeded("bo\x00b", "10.0.0.\x001")
    async with database.transaction(readonly=True) as session:
        rows = (await session.execute(select(LoginFailureCounter.key))).scalars().all()
        pairs = (await session.execute(select(LoginTrustedPair.username))).scalars().all()
    assert len(rows) == 4  # 3 users (the fourth was reset by its success) + 1 address
    assert len(pairs) == 1
    assert all(len(key) == 64 and "horse" not in key for key in [*rows, *pairs])
    other = DatabaseState(database, 900, b"another secret")  # keyed: other nodes' secret
    assert await other.counters([("ip", "10.0.0.\x001")]) == {}


async def test_concurrent_failures_are_all_counted(database: Database) -> None:
    """Failures racing on several connections lose no increment (row locks on PostgreSQL,
    the one writer on SQLite)."""
    clock = FakeClock()
    nodes = [
        LoginThrottle(100, 1000, 60, 900, state=DatabaseState(database, 900), clock=clock)
        for _ in range(4)
    ]
    await asyncio.gather(*(node.failed("alice", "10.0.0.1") for node in nodes for _ in range(5)))
    counters = await nodes[0].state.counters([("user", "alice"), ("ip", "10.0.0.1")])
    assert {key: c.failures for key, c in counters.items()} == {
        ("user", "alice"): 20,
        ("ip", "10.0.0.1"): 20,
    }


# --- through the HTTP APIs ------------------------------------------------------------------------


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {
        "LOGIN_THROTTLE_USER_FAILURES": USER_LIMIT,
        "LOGIN_THROTTLE_IP_FAILURES": IP_LIMIT,
        "LOGIN_THROTTLE_MAX_SECONDS": 60,
    }


@pytest.fixture
def clock(world: World) -> FakeClock:
    """The app's own throttle (in the database on PostgreSQL), on a fake clock."""
    fake = FakeClock()
    limiter = LoginThrottle.from_settings(world.app.state.settings, world.db)
    limiter.clock = fake
    world.app.state.login_throttle = limiter
    return fake


def assert_problem_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == 429
    assert body["error_type"] == "too_many_requests"
    assert body["retry_after"] == int(response.headers["Retry-After"])
    assert body["detail"] == body["message"] == body["error_message"]


def assert_oci_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    (error,) = response.json()["errors"]
    assert error["code"] == "TOOMANYREQUESTS"
    assert "try again in" in error["message"]


async def signin(client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/signin", json={"username": user, "password": password})


async def test_signin_is_throttled_then_recovers(world: World, clock: FakeClock) -> None:
    client = world.client
    for _ in range(USER_LIMIT):
        assert (await signin(client, "alice", "wrong")).status_code == 403
    refused = await signin(client, "alice", PASSWORD)  # even the right password must wait
    assert_problem_429(refused)
    assert "set-cookie" not in refused.headers
    assert PASSWORD not in refused.text
    clock.advance(int(refused.headers["Retry-After"]))
    assert (await signin(client, "alice", PASSWORD)).status_code == 200
    # The success reset alice's counter: one more failure is an ordinary 403.
    assert (await signin(client, "alice", "wrong")).status_code == 403


async def test_token_endpoint_is_throttled(world: World, clock: FakeClock) -> None:
    client = world.client
    for _ in range(USER_LIMIT):
        response = await client.get("/v2/auth", headers=basic("alice", "wrong"))
        assert response.status_code == 401
    assert_oci_429(await client.get("/v2/auth", headers=basic("alice", PASSWORD)))
    # Another user from the same address is not affected.
    ok = await client.get(
        "/v2/auth", params={"scope": "repository:acme/app:pull"}, headers=basic("bob", PASSWORD)
    )
    assert ok.status_code == 200, ok.text
    clock.advance(1)
    assert (await client.get("/v2/auth", headers=basic("alice", PASSWORD))).status_code == 200


async def test_basic_credentials_on_v2_and_api_are_throttled(
    world: World, clock: FakeClock
) -> None:
    client = world.client
    for i in range(USER_LIMIT):
        path = "/v2/" if i % 2 else "/api/v1/user/"  # the two APIs share the counters
        assert (await client.get(path, headers=basic("bob", "wrong"))).status_code == 401
    assert_oci_429(await client.get("/v2/", headers=basic("bob", PASSWORD)))
    assert_problem_429(await client.get("/api/v1/user/", headers=basic("bob", PASSWORD)))
    # Token authentication is not a password login: never throttled.
    assert (await client.get("/api/v1/user/", headers=world.auth("bob"))).status_code == 200
    clock.advance(60)
    assert (await client.get("/api/v1/user/", headers=basic("bob", PASSWORD))).status_code == 200


async def test_robot_token_guessing_is_throttled(world: World, clock: FakeClock) -> None:
    client = world.client
    for _ in range(USER_LIMIT):
        assert (await client.get("/v2/", headers=basic("acme+bot", "guess"))).status_code == 401
    assert_oci_429(await client.get("/v2/", headers=basic("acme+bot", world.robot_token)))
    clock.advance(1)
    assert (await client.get("/v2/", headers=basic("acme+bot", world.robot_token))).status_code == (
        200
    )


async def test_spraying_from_one_address_spares_known_users(world: World, clock: FakeClock) -> None:
    client = world.client
    assert (await signin(client, "rita", PASSWORD)).status_code == 200
    for i in range(IP_LIMIT):
        assert (await signin(client, f"nobody{i}", "guess")).status_code == 403
    assert_problem_429(await signin(client, "bob", PASSWORD))  # never signed in from here
    # rita signed in from this address before: her logins still go through, at full speed.
    for _ in range(5):
        assert (await signin(client, "rita", PASSWORD)).status_code == 200
        assert (await client.get("/v2/", headers=basic("rita", PASSWORD))).status_code == 200


async def test_successful_logins_are_never_throttled(world: World, clock: FakeClock) -> None:
    client = world.client
    for _ in range(3 * (USER_LIMIT + IP_LIMIT)):
        assert (await client.get("/v2/", headers=basic("alice", PASSWORD))).status_code == 200
        assert (await signin(client, "alice", PASSWORD)).status_code == 200
    limiter: LoginThrottle = world.app.state.login_throttle
    assert await limiter.state.counters([("user", "alice")]) == {}
