"""Validation rules of mirror configurations, with Quay's literal error texts (§1.2, §1.3)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from moorage.auth.crypto import NONCE_BYTES, PREFIX
from moorage.db.models import Account, AccountKind
from moorage.errors import InvalidRequest

VALID_ARCHITECTURES = frozenset({"amd64", "arm64", "ppc64le", "s390x"})
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TAG_BYTES = 16  # AES-CCM authentication tag of auth.crypto.FieldCipher (the library default)


def detail_error(message: str) -> InvalidRequest:
    """Quay answers these with a handler dict; our superset shape carries every key."""
    return InvalidRequest(message)


def parse_start_date(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.strptime(value, DATE_FORMAT)
    except (TypeError, ValueError) as exc:
        raise detail_error("Incorrect DateTime format for sync_start_date.") from exc
    return parsed.replace(tzinfo=dt.UTC)


def format_date(value: dt.datetime | None) -> str | None:
    """Always ``YYYY-MM-DDTHH:MM:SSZ`` (no microseconds), so a GET body can be sent back.

    The year is zero-padded explicitly: ``strftime("%Y")`` prints year 1 as ``1``, which the
    parser then refuses.
    """
    if value is None:
        return None
    utc = value.astimezone(dt.UTC) if value.tzinfo else value
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"


def check_architectures(value: Any, sparse_index_enabled: bool) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise detail_error("architecture_filter must be an array")
    if value and not sparse_index_enabled:
        raise detail_error("Architecture filtering requires FEATURE_SPARSE_INDEX to be enabled.")
    invalid = sorted({a for a in value if a not in VALID_ARCHITECTURES})
    if invalid:
        raise detail_error(f"Invalid architectures: {', '.join(invalid)}")
    return list(value)


def check_rule_value(rule: dict[str, Any]) -> list[str]:
    value = rule.get("rule_value")
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "validation failed: rule_value for TAG_GLOB_CSV must be a list with at least one rule"
        )
    return [str(v) for v in value]


def sealed_capacity(column_length: int) -> int:
    """Longest UTF-8 value (bytes) whose encrypted ``v0$$`` form fits ``column_length``."""
    return (column_length - len(PREFIX)) // 4 * 3 - NONCE_BYTES - TAG_BYTES


def has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def robot_namespace(robot_username: str) -> str:
    namespace, plus, short = robot_username.partition("+")
    if not plus or not namespace or not short or "+" in short:
        raise InvalidRequest("Invalid robot")
    return namespace


def check_robot(robot: Account | None, robot_username: str, repo_namespace: str) -> Account:
    namespace = robot_namespace(robot_username)
    if robot is None or robot.kind != AccountKind.ROBOT:
        raise InvalidRequest("Could not find robot with specified username")
    if namespace != repo_namespace:
        raise InvalidRequest("Invalid robot")
    return robot


def next_slot(start: dt.datetime, interval: int, now: dt.datetime) -> dt.datetime:
    """Quay's start-date grid: the next run keeps the schedule anchored at ``start``."""
    elapsed = int((now - start).total_seconds())
    return now + dt.timedelta(seconds=interval - (elapsed % interval))
