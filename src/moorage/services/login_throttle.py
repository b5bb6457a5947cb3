"""Throttle failed password logins per username and per client address.

Every login with a password or robot token (Basic credentials on ``/v2/``, ``/v2/auth`` and
``/api/v1``, and ``POST /api/v1/signin``) is checked here first and reported afterwards:

- a username is throttled after ``LOGIN_THROTTLE_USER_FAILURES`` consecutive failures, a client
  address after ``LOGIN_THROTTLE_IP_FAILURES``: each further failure doubles the wait (1 s, 2 s,
  4 s … up to ``LOGIN_THROTTLE_MAX_SECONDS``). While a key waits, logins for it are refused
  *without checking the password* (429 with ``Retry-After``), so waiting is the only way on;
- a success resets the username's counter, and the pair (username, address) is remembered for
  ``LOGIN_THROTTLE_WINDOW_SECONDS``: that user is then never refused because *other* logins from
  the same address failed (a CI farm behind one NAT address keeps working). A success does not
  reset the address's counter, so an attacker cannot clear it by signing in to their own account;
- counters are forgotten ``LOGIN_THROTTLE_WINDOW_SECONDS`` after their last failure.

Successful logins are never delayed: nothing here sleeps. ``$oauthtoken`` logins count towards
the address only.

Where the counters live (``ThrottleState``): in the process's memory (``MemoryState``, bounded to
``max_entries`` keys, least recently touched dropped first), or in the database
(``DatabaseState``), shared by every API node, so N nodes behind a load balancer allow no more
attempts than one. ``LOGIN_THROTTLE_SHARED`` chooses; by default the database on PostgreSQL (the
multi-node setup) and memory on SQLite (one node). A failure updates the shared counters under
row locks; a success writes only when it has something to reset or its trust is getting old.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from moorage.config import Settings
from moorage.db.engine import Database
from moorage.db.queries.login_throttle import LoginThrottleQueries
from moorage.errors import MoorageError

OAUTH_USER = "$oauthtoken"
MAX_ENTRIES = 100_000
_KEY_LENGTH = 256


class LoginThrottled(MoorageError):
    """Too many failed logins"""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many failed login attempts; try again in {retry_after} seconds",
            detail={"retry_after": retry_after},
        )
        self.retry_after = retry_after


@dataclass(slots=True)
class Counter:
    failures: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


Key = tuple[str, str]  # ("user" | "ip", value)
Update = Callable[[Key, Counter | None], Counter]


class ThrottleState(Protocol):
    """Where the counters live; ``add_failures`` applies ``update`` to each key atomically."""

    async def counters(self, keys: list[Key]) -> dict[Key, Counter]: ...

    async def trusted_since(self, user: str, address: str) -> float | None: ...

    async def add_failures(self, keys: list[Key], update: Update, now: float) -> None: ...

    async def succeeded(self, user: Key, pair: tuple[str, str] | None, now: float) -> None: ...


class MemoryState:
    """Counters of this process only. Not thread-safe: use it from one event loop."""

    def __init__(self, window_seconds: float, max_entries: int = MAX_ENTRIES) -> None:
        self.window_seconds = window_seconds
        self.max_entries = max_entries
        self._counters: OrderedDict[Key, Counter] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()

    async def counters(self, keys: list[Key]) -> dict[Key, Counter]:
        return {key: self._counters[key] for key in keys if key in self._counters}

    async def trusted_since(self, user: str, address: str) -> float | None:
        return self._trusted.get((user, address))

    async def add_failures(self, keys: list[Key], update: Update, now: float) -> None:
        for key in keys:
            self._counters[key] = update(key, self._counters.pop(key, None))  # touched: last
        self._trim(self._counters)

    async def succeeded(self, user: Key, pair: tuple[str, str] | None, now: float) -> None:
        self._counters.pop(user, None)
        if pair is not None:
            self._trusted.pop(pair, None)
            self._trusted[pair] = now
            self._trim(self._trusted)

    def _trim(self, entries: OrderedDict[Any, Any]) -> None:
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._counters)


class DatabaseState:
    """Counters in the database, shared by every node; times are Unix seconds.

    Usernames and addresses are stored as keyed hashes (HMAC-SHA256 with ``secret``, the
    nodes' shared SECRET_KEY): the table never holds what people typed into a username field
    (sometimes a password), and any text, NUL included, makes a valid key.
    """

    PURGE_EVERY = 100  # failures between two purges of expired rows (per process)

    def __init__(self, db: Database, window_seconds: float, secret: bytes = b"") -> None:
        self.db = db
        self.window_seconds = window_seconds
        self.secret = secret
        self._failures_since_purge = 0

    def _hash(self, *parts: str) -> str:
        text = "\0".join(parts).encode("utf-8", "backslashreplace")
        return hmac.new(self.secret, text, hashlib.sha256).hexdigest()

    def _stored(self, keys: list[Key]) -> dict[Key, Key]:
        """Stored key → the caller's key."""
        return {(kind, self._hash(kind, value)): (kind, value) for kind, value in keys}

    async def counters(self, keys: list[Key]) -> dict[Key, Counter]:
        stored = self._stored(keys)
        async with self.db.transaction(readonly=True) as session:
            rows = await LoginThrottleQueries(session).counters(list(stored))
        return {stored[(row.kind, row.key)]: _counter(row) for row in rows}

    async def trusted_since(self, user: str, address: str) -> float | None:
        async with self.db.transaction(readonly=True) as session:
            return await LoginThrottleQueries(session).trusted_since(*self._pair(user, address))

    def _pair(self, user: str, address: str) -> tuple[str, str]:
        return self._hash("user", user), self._hash("ip", address)

    async def add_failures(self, keys: list[Key], update: Update, now: float) -> None:
        stored = self._stored(keys)
        ordered = sorted(stored)  # one lock order on every node: no deadlocks
        async with self.db.transaction() as session:
            queries = LoginThrottleQueries(session)
            await queries.ensure_counters(ordered)
            for row in await queries.counters(ordered, lock=True):
                key = stored[(row.kind, row.key)]
                previous = _counter(row) if row.failures else None
                counter = update(key, previous)
                row.failures = counter.failures
                row.blocked_until = counter.blocked_until
                row.last_failure = counter.last_failure
            self._failures_since_purge += 1
            if self._failures_since_purge >= self.PURGE_EVERY:
                self._failures_since_purge = 0
                await queries.purge(now, self.window_seconds)

    async def succeeded(self, user: Key, pair: tuple[str, str] | None, now: float) -> None:
        (user_row,) = self._stored([user])
        trusted = self._pair(*pair) if pair is not None else None
        async with self.db.transaction(readonly=True) as session:
            queries = LoginThrottleQueries(session)
            has_counter = bool(await queries.counters([user_row]))
            since = await queries.trusted_since(*trusted) if trusted is not None else None
        # Trust is renewed once it is half a window old, not on every login.
        renew = trusted is not None and (since is None or now - since > self.window_seconds / 2)
        if not has_counter and not renew:
            return
        async with self.db.transaction() as session:
            queries = LoginThrottleQueries(session)
            if has_counter:
                await queries.delete_counter(user_row)
            if renew and trusted is not None:
                await queries.trust(*trusted, now)


def _counter(row: Any) -> Counter:
    return Counter(int(row.failures), float(row.blocked_until), float(row.last_failure))


class LoginThrottle:
    """The throttling rules, over counters kept by ``state``."""

    def __init__(
        self,
        user_failures: int,
        ip_failures: int,
        max_seconds: int,
        window_seconds: int,
        *,
        state: ThrottleState | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.user_failures = user_failures
        self.ip_failures = ip_failures
        self.max_seconds = max_seconds
        self.window_seconds = window_seconds
        self.state: ThrottleState = state if state is not None else MemoryState(window_seconds)
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, db: Database | None = None) -> LoginThrottle:
        """Shared through ``db`` if LOGIN_THROTTLE_SHARED says so (default: on PostgreSQL)."""
        shared = settings.LOGIN_THROTTLE_SHARED
        if shared is None:
            shared = db is not None and not db.is_sqlite
        window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
        limits = (
            settings.LOGIN_THROTTLE_USER_FAILURES,
            settings.LOGIN_THROTTLE_IP_FAILURES,
            settings.LOGIN_THROTTLE_MAX_SECONDS,
            window,
        )
        if shared and db is not None:
            # Wall-clock time: the nodes compare each other's timestamps.
            secret = settings.secret("SECRET_KEY").encode()
            state = DatabaseState(db, window, secret)
            return cls(*limits, state=state, clock=time.time)
        return cls(*limits)

    @property
    def enabled(self) -> bool:
        return self.user_failures > 0 or self.ip_failures > 0

    # --- the three calls of a login -------------------------------------------------------------
    async def check(self, username: str | None, address: str | None) -> None:
        """Raise LoginThrottled when this login must wait; do nothing otherwise."""
        wait = await self.retry_after(username, address)
        if wait:
            raise LoginThrottled(wait)

    async def retry_after(self, username: str | None, address: str | None) -> int:
        """Whole seconds this login must wait (0: go ahead)."""
        if not self.enabled:
            return 0
        now = self.clock()
        counters = await self.state.counters(await self._keys(username, address, now))
        until = max((counter.blocked_until for counter in counters.values()), default=0.0)
        return math.ceil(until - now) if until > now else 0

    async def failed(self, username: str | None, address: str | None) -> None:
        if not self.enabled:
            return
        now = self.clock()

        def update(key: Key, counter: Counter | None) -> Counter:
            threshold = self.user_failures if key[0] == "user" else self.ip_failures
            if counter is None or (
                now - counter.last_failure > self.window_seconds and now >= counter.blocked_until
            ):
                counter = Counter()  # an old streak is forgotten
            counter = Counter(counter.failures + 1, counter.blocked_until, now)
            if counter.failures >= threshold:
                delay = min(float(self.max_seconds), 2.0 ** (counter.failures - threshold))
                counter.blocked_until = now + delay
            return counter

        keys = await self._keys(username, address, now, for_failure=True)
        if keys:
            await self.state.add_failures(keys, update, now)

    async def succeeded(self, username: str | None, address: str | None) -> None:
        if not self.enabled:
            return
        user = _user_key(username)
        if user is None:
            return
        pair = (user, address[:_KEY_LENGTH]) if address else None
        await self.state.succeeded(("user", user), pair, self.clock())

    # --- helpers --------------------------------------------------------------------------------
    async def _keys(
        self, username: str | None, address: str | None, now: float, *, for_failure: bool = False
    ) -> list[Key]:
        keys: list[Key] = []
        user = _user_key(username)
        if user is not None and self.user_failures > 0:
            keys.append(("user", user))
        if address and self.ip_failures > 0:
            address = address[:_KEY_LENGTH]
            # A user who recently signed in from this address is not held back by the others.
            if for_failure or user is None or not await self._trusted_pair(user, address, now):
                keys.append(("ip", address))
        return keys

    async def _trusted_pair(self, user: str, address: str, now: float) -> bool:
        since = await self.state.trusted_since(user, address)
        return since is not None and now - since <= self.window_seconds


def _user_key(username: str | None) -> str | None:
    if not username or username == OAUTH_USER:
        return None
    return username[:_KEY_LENGTH].lower()
