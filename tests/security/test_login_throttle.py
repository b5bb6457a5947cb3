"""Failed password logins are throttled per username and per client address (issue #6 item 4).

Unit tests drive ``LoginThrottle`` with a fake clock; the API tests check every login path —
``/v2/auth``, Basic credentials on ``/v2/`` and on ``/api/v1``, ``POST /api/v1/signin`` — for
429 + ``Retry-After`` in the right error shape, and that successful logins are never held back.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from moorage.services.login_throttle import LoginThrottle, LoginThrottled
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


def throttle(clock: FakeClock, **kw: Any) -> LoginThrottle:
    values: dict[str, Any] = {
        "user_failures": USER_LIMIT,
        "ip_failures": IP_LIMIT,
        "max_seconds": 60,
        "window_seconds": 900,
    }
    values.update(kw)
    return LoginThrottle(**values, clock=clock)


# --- the limiter on its own ----------------------------------------------------------------------


def test_backoff_doubles_up_to_the_maximum() -> None:
    clock = FakeClock()
    limiter = throttle(clock, max_seconds=10)
    for _ in range(USER_LIMIT - 1):
        limiter.failed("alice", "10.0.0.1")
        assert limiter.retry_after("alice", "10.0.0.1") == 0
    waits = []
    for _ in range(6):
        limiter.failed("alice", "10.0.0.1")
        wait = limiter.retry_after("alice", "10.0.0.2")  # any address: the username waits
        waits.append(wait)
        clock.advance(wait)
        assert limiter.retry_after("alice", "10.0.0.2") == 0
    assert waits == [1, 2, 4, 8, 10, 10]


def test_check_raises_with_retry_after() -> None:
    clock = FakeClock()
    limiter = throttle(clock)
    for _ in range(USER_LIMIT + 2):
        limiter.failed("alice", None)
    with pytest.raises(LoginThrottled) as caught:
        limiter.check("alice", None)
    assert caught.value.retry_after == 4
    assert "4 seconds" in caught.value.message
    limiter.check("bob", None)  # others are not affected


def test_success_resets_the_username() -> None:
    clock = FakeClock()
    limiter = throttle(clock)
    for _ in range(USER_LIMIT - 1):
        limiter.failed("alice", "10.0.0.1")
    limiter.succeeded("alice", "10.0.0.1")
    for _ in range(USER_LIMIT - 1):
        limiter.failed("alice", "10.0.0.1")
    assert limiter.retry_after("alice", "10.0.0.1") == 0


def test_counters_are_forgotten_after_the_window() -> None:
    clock = FakeClock()
    limiter = throttle(clock, window_seconds=100)
    for _ in range(USER_LIMIT - 1):
        limiter.failed("alice", None)
    clock.advance(101)
    limiter.failed("alice", None)
    assert limiter.retry_after("alice", None) == 0  # a fresh streak of one


def test_address_limit_spares_users_who_signed_in_from_there() -> None:
    clock = FakeClock()
    limiter = throttle(clock)
    limiter.succeeded("ci", "10.0.0.9")  # a CI job signs in from the shared NAT address
    for i in range(IP_LIMIT):
        limiter.failed(f"victim{i}", "10.0.0.9")  # password spraying from the same address
    assert limiter.retry_after("newcomer", "10.0.0.9") == 1
    assert limiter.retry_after("ci", "10.0.0.9") == 0
    assert limiter.retry_after("newcomer", "10.0.0.10") == 0
    # The attacker's own successful login does not clear the address's counter.
    limiter.succeeded("attacker", "10.0.0.9")
    assert limiter.retry_after("victim99", "10.0.0.9") == 1
    # The exemption expires with the window.
    clock.advance(901)
    assert limiter.retry_after("ci", "10.0.0.9") == 0


def test_oauthtoken_counts_towards_the_address_only() -> None:
    limiter = throttle(FakeClock())
    for _ in range(IP_LIMIT):
        limiter.failed("$oauthtoken", "10.0.0.1")
    assert limiter.retry_after("$oauthtoken", "10.0.0.2") == 0
    assert limiter.retry_after("$oauthtoken", "10.0.0.1") == 1
    assert len(limiter) == 1


def test_zero_disables_and_memory_is_bounded() -> None:
    off = throttle(FakeClock(), user_failures=0, ip_failures=0)
    for _ in range(100):
        off.failed("alice", "10.0.0.1")
    assert off.retry_after("alice", "10.0.0.1") == 0
    assert len(off) == 0
    bounded = LoginThrottle(3, 3, 60, 900, clock=FakeClock(), max_entries=50)
    for i in range(500):
        bounded.failed(f"user{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(bounded) == 50


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
    fake = FakeClock()
    limiter = LoginThrottle.from_settings(world.app.state.settings)
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
    assert len(limiter) == 0
