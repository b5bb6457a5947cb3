"""Pydantic request/response models of /api/v1 (Quay's field names). Unknown keys are ignored."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


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
