"""Throttle failed password logins per username and per client address, in this process.

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

Successful logins are never delayed: nothing here sleeps, and a key that is not throttled costs
two dictionary look-ups. ``$oauthtoken`` logins count towards the address only.

The state lives in memory, per process (documented as per-node): with N nodes behind a load
balancer an attacker gets at most N times the attempts. At most ``max_entries`` keys are kept;
the least recently touched are dropped first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moorage.config import Settings
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
class _Counter:
    failures: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


class LoginThrottle:
    """Counters of failed logins. Not thread-safe: use it from one event loop (no awaits)."""

    def __init__(
        self,
        user_failures: int,
        ip_failures: int,
        max_seconds: int,
        window_seconds: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.user_failures = user_failures
        self.ip_failures = ip_failures
        self.max_seconds = max_seconds
        self.window_seconds = window_seconds
        self.clock = clock
        self.max_entries = max_entries
        self._counters: OrderedDict[tuple[str, str], _Counter] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        return cls(
            settings.LOGIN_THROTTLE_USER_FAILURES,
            settings.LOGIN_THROTTLE_IP_FAILURES,
            settings.LOGIN_THROTTLE_MAX_SECONDS,
            settings.LOGIN_THROTTLE_WINDOW_SECONDS,
        )

    @property
    def enabled(self) -> bool:
        return self.user_failures > 0 or self.ip_failures > 0

    # --- the three calls of a login -------------------------------------------------------------
    def check(self, username: str | None, address: str | None) -> None:
        """Raise LoginThrottled when this login must wait; do nothing otherwise."""
        wait = self.retry_after(username, address)
        if wait:
            raise LoginThrottled(wait)

    def retry_after(self, username: str | None, address: str | None) -> int:
        """Whole seconds this login must wait (0: go ahead)."""
        if not self.enabled:
            return 0
        now = self.clock()
        until = 0.0
        for key in self._keys(username, address, now):
            counter = self._counters.get(key)
            if counter is not None:
                until = max(until, counter.blocked_until)
        return math.ceil(until - now) if until > now else 0

    def failed(self, username: str | None, address: str | None) -> None:
        if not self.enabled:
            return
        now = self.clock()
        for key in self._keys(username, address, now, for_failure=True):
            threshold = self.user_failures if key[0] == "user" else self.ip_failures
            counter = self._counters.pop(key, None) or _Counter()
            if now - counter.last_failure > self.window_seconds and now >= counter.blocked_until:
                counter = _Counter()  # an old streak is forgotten
            counter.failures += 1
            counter.last_failure = now
            if counter.failures >= threshold:
                delay = min(float(self.max_seconds), 2.0 ** (counter.failures - threshold))
                counter.blocked_until = now + delay
            self._counters[key] = counter  # most recently touched last
        self._trim(self._counters)

    def succeeded(self, username: str | None, address: str | None) -> None:
        if not self.enabled:
            return
        user = _user_key(username)
        if user is None:
            return
        self._counters.pop(("user", user), None)
        if address:
            pair = (user, address[:_KEY_LENGTH])
            self._trusted.pop(pair, None)
            self._trusted[pair] = self.clock()
            self._trim(self._trusted)

    # --- helpers --------------------------------------------------------------------------------
    def _keys(
        self, username: str | None, address: str | None, now: float, *, for_failure: bool = False
    ) -> list[tuple[str, str]]:
        keys: list[tuple[str, str]] = []
        user = _user_key(username)
        if user is not None and self.user_failures > 0:
            keys.append(("user", user))
        if address and self.ip_failures > 0:
            address = address[:_KEY_LENGTH]
            # A user who recently signed in from this address is not held back by the others.
            if for_failure or user is None or not self._trusted_pair(user, address, now):
                keys.append(("ip", address))
        return keys

    def _trusted_pair(self, user: str, address: str, now: float) -> bool:
        since = self._trusted.get((user, address))
        if since is None:
            return False
        if now - since > self.window_seconds:
            del self._trusted[(user, address)]
            return False
        return True

    def _trim(self, entries: OrderedDict[tuple[str, str], Any]) -> None:
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._counters)


def _user_key(username: str | None) -> str | None:
    if not username or username == OAUTH_USER:
        return None
    return username[:_KEY_LENGTH].lower()
