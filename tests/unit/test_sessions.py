"""moorage.auth.sessions: signed session cookies and CSRF tokens (pure functions)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from moorage.auth import sessions

SECRET = "test secret key"
NOW = 1_800_000_000
FP = sessions.fingerprint("$argon2id$v=19$m=65536,t=3,p=4$salt$hash")


def test_issue_and_verify_roundtrip() -> None:
    value = sessions.issue(SECRET, 42, "alice", FP, NOW)
    claims = sessions.verify(SECRET, value, FP, NOW + 60)
    assert claims == sessions.SessionClaims(42, "alice", NOW + sessions.SESSION_SECONDS)
    assert value.startswith("v1:42:alice:")
    # Cookie-safe characters only (no ';', ',', whitespace, quotes or backslashes).
    assert not set(value) & set(';, "\\\t\n')


def test_expiry_is_twelve_hours() -> None:
    value = sessions.issue(SECRET, 1, "alice", FP, NOW)
    assert sessions.SESSION_SECONDS == 12 * 3600
    assert sessions.verify(SECRET, value, FP, NOW + sessions.SESSION_SECONDS - 1) is not None
    assert sessions.verify(SECRET, value, FP, NOW + sessions.SESSION_SECONDS) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v.replace("v1:42:", "v1:43:"),  # another account id
        lambda v: v.replace(":alice:", ":admin:"),  # another user name
        lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),  # a forged MAC
        lambda v: v.rsplit(":", 1)[0],  # no MAC
        lambda v: "v2" + v[2:],  # unknown version
        lambda v: v + ":extra",
        lambda v: "",
        lambda v: "x" * 1000,
    ],
)
def test_tampered_cookies_are_refused(mutate: Callable[[str], str]) -> None:
    value = sessions.issue(SECRET, 42, "alice", FP, NOW)
    assert sessions.verify(SECRET, mutate(value), FP, NOW) is None


def test_expiry_cannot_be_stretched() -> None:
    value = sessions.issue(SECRET, 42, "alice", FP, NOW)
    parts = value.split(":")
    parts[3] = str(NOW + 10 * sessions.SESSION_SECONDS)
    assert sessions.peek(":".join(parts), NOW) is None  # beyond the maximum lifetime
    parts[3] = str(NOW + 100)
    assert sessions.verify(SECRET, ":".join(parts), FP, NOW) is None  # MAC no longer matches


def test_other_secret_or_new_password_invalidates() -> None:
    value = sessions.issue(SECRET, 42, "alice", FP, NOW)
    assert sessions.verify("another secret", value, FP, NOW) is None
    assert sessions.verify(SECRET, value, sessions.fingerprint("new hash"), NOW) is None


def test_csrf_token_is_bound_to_the_session() -> None:
    first = sessions.issue(SECRET, 42, "alice", FP, NOW)
    second = sessions.issue(SECRET, 42, "alice", FP, NOW + 1)
    token = sessions.csrf_token(SECRET, first)
    assert token == sessions.csrf_token(SECRET, first)  # stateless: derived again each time
    assert sessions.csrf_valid(SECRET, first, token)
    assert not sessions.csrf_valid(SECRET, second, token)
    assert not sessions.csrf_valid(SECRET, first, None)
    assert not sessions.csrf_valid(SECRET, first, "")
    assert not sessions.csrf_valid("another secret", first, token)
    # The CSRF token does not reveal the cookie's MAC.
    assert token != first.rsplit(":", 1)[1]


def test_safe_methods_need_no_csrf() -> None:
    assert not sessions.needs_csrf("GET")
    assert not sessions.needs_csrf("head")
    assert sessions.needs_csrf("POST")
    assert sessions.needs_csrf("PUT")
    assert sessions.needs_csrf("DELETE")


def test_usernames_with_the_separator_are_refused() -> None:
    with pytest.raises(ValueError, match="':'"):
        sessions.issue(SECRET, 1, "a:b", FP, NOW)
