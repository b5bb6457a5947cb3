"""Pydantic request/response models of /api/v1 (Quay's field names). Unknown keys are ignored."""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moorage.errors import InvalidRequest

# Integers in paths and queries end in SQL: anything outside a 64-bit column is a 400, not a 500.
MAX_INT64 = 2**63 - 1
MIN_INT64 = -(2**63)


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if contains_nul(data):
            raise ValueError("NUL characters are not allowed")
        return data


def check_page_token(token: str | None, key: str) -> str | None:
    """Refuse a ``next_page`` token whose position is not a 64-bit integer: the services decode
    it into an SQL parameter, where a 31-digit number or a float would fail (a 500)."""
    if not token:
        return token
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))[key]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise InvalidRequest("Invalid next_page token") from exc
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_INT64 <= value <= MAX_INT64:
        raise InvalidRequest("Invalid next_page token")
    return token


def contains_nul(value: Any, depth: int = 0) -> bool:
    """Whether a JSON value holds a NUL character in any string (PostgreSQL cannot store it)."""
    if isinstance(value, str):
        return "\x00" in value
    if depth > 64:
        return False
    if isinstance(value, dict):
        return any(contains_nul(k, depth) or contains_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v, depth + 1) for v in value)
    return False


class RepositoryCreate(Request):
    repository: str = Field(min_length=1, max_length=255)
    namespace: str | None = None
    visibility: Literal["public", "private"] = "private"
    description: str | None = Field(None, max_length=4096)
    repo_kind: Literal["image"] | None = "image"


class RepositoryCreated(BaseModel):
    namespace: str
    name: str
    kind: str = "image"


class RepositorySummary(BaseModel):
    namespace: str
    name: str
    description: str | None
    is_public: bool
    kind: str = "image"
    state: str


class RepositoryList(BaseModel):
    repositories: list[RepositorySummary]
    next_page: str | None = None


class RepositoryRead(RepositorySummary):
    can_write: bool
    can_admin: bool
    is_organization: bool
    status_token: str = ""
    trust_enabled: bool = False
    tag_expiration_s: int | None = None


class VisibilityChange(Request):
    visibility: Literal["public", "private"]


class StateChange(Request):
    state: Literal["NORMAL", "READ_ONLY", "MIRROR"]


class Success(BaseModel):
    success: bool = True


class UserInitialize(Request):
    username: str
    password: str
    email: str | None = None
    access_token: bool = True


class UserInitialized(BaseModel):
    username: str
    email: str | None
    access_token: str | None = None


class OrganizationSummary(BaseModel):
    name: str
    is_org_admin: bool
    kind: str = "org"


class UserRead(BaseModel):
    anonymous: bool = False
    username: str
    email: str | None = None
    verified: bool = True
    super_user: bool = False
    is_robot: bool = False
    organizations: list[OrganizationSummary] = []
    scopes: list[str] | None = None


class TokenCreate(Request):
    name: str = Field(min_length=1, max_length=255)
    scopes: list[str] = Field(min_length=1)


class TokenRead(BaseModel):
    id: int
    name: str
    scopes: list[str]
    token_prefix: str
    created: str
    last_used: str | None = None


class TokenCreated(TokenRead):
    token: str = Field(description="shown only in this response")
