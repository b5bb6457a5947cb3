"""Request/response models of the organization, robot, tag, permission and log endpoints.

Field names and optional keys follow Quay: keys Quay leaves out are omitted (not null) here too.
"""

from __future__ import annotations

import datetime as dt
from email.utils import formatdate
from typing import Any, Literal

from pydantic import BaseModel, Field

from moorage.api.v1.schemas import Request


def _none(value: Any) -> bool:
    return value is None


def format_date(value: dt.datetime | float) -> str:
    """RFC 2822 in UTC, as Quay's ``format_date`` ("Tue, 02 Jan 2024 03:04:05 -0000")."""
    seconds = value.timestamp() if isinstance(value, dt.datetime) else value
    return formatdate(seconds)


# --- organizations -----------------------------------------------------------------------------


class OrganizationCreate(Request):
    name: str = Field(min_length=1, max_length=255)
    email: str | None = Field(None, max_length=255)
    recaptcha_response: str | None = Field(None, description="accepted for compatibility; ignored")


class OrganizationRead(BaseModel):
    name: str
    email: str = Field(description="empty unless the caller administers the organization")
    avatar: dict[str, Any] = {}
    is_admin: bool
    is_member: bool
    teams: dict[str, Any] | None = Field(None, exclude_if=_none)
    ordered_teams: list[str] | None = Field(None, exclude_if=_none)


# --- robots ------------------------------------------------------------------------------------


class RobotCreate(Request):
    description: str | None = Field(None, max_length=255)
    unstructured_metadata: dict[str, Any] | None = Field(
        None, description="accepted for compatibility; not stored"
    )


class RobotRead(BaseModel):
    name: str
    created: str | None
    last_accessed: str | None = None
    description: str = ""
    unstructured_metadata: dict[str, Any] = {}


class RobotCreated(RobotRead):
    token: str = Field(description="shown only in this response")


class RobotListEntry(BaseModel):
    name: str
    created: str | None
    last_accessed: str | None = None
    description: str = ""
    teams: list[Any] = []
    repositories: list[str] = []


class RobotList(BaseModel):
    robots: list[RobotListEntry]


# --- tags --------------------------------------------------------------------------------------


class TagRead(BaseModel):
    name: str
    reversion: bool = False
    start_ts: int | None = Field(None, exclude_if=_none)
    end_ts: int | None = Field(None, exclude_if=_none)
    manifest_digest: str
    is_manifest_list: bool
    size: int | None
    last_modified: str | None = Field(None, exclude_if=_none)
    expiration: str | None = Field(None, exclude_if=_none)


class TagList(BaseModel):
    tags: list[TagRead]
    page: int
    has_additional: bool


class TagChange(Request):
    manifest_digest: str | None = Field(None, max_length=255)
    expiration: float | None = Field(None, description="only null (no expiration) is supported")


# --- repository permissions --------------------------------------------------------------------


class PermissionChange(Request):
    role: Literal["read", "write", "admin"]


class PermissionRead(BaseModel):
    role: str
    name: str
    is_robot: bool
    avatar: dict[str, Any] = {}
    is_org_member: bool | None = Field(None, exclude_if=_none)


class PermissionList(BaseModel):
    permissions: dict[str, PermissionRead]


# --- usage logs --------------------------------------------------------------------------------


class LogPerformer(BaseModel):
    kind: str = "user"
    name: str
    is_robot: bool
    avatar: dict[str, Any] = {}


class LogEntryRead(BaseModel):
    kind: str
    metadata: dict[str, Any]
    ip: str | None
    datetime: str
    performer: LogPerformer | None = Field(None, exclude_if=_none)


class LogList(BaseModel):
    start_time: str
    end_time: str
    logs: list[LogEntryRead]
    next_page: str | None = Field(None, exclude_if=_none)
