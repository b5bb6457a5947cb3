"""/api/v1/repository/{namespace}/{repository}/tag/: tag history, create/move, delete."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from moorage.api.v1.deps import (
    AccessDep,
    ActorDep,
    ManagementDep,
    PrincipalDep,
    RegistryDep,
    writable,
)
from moorage.api.v1.guards import check_repo, require_normal
from moorage.api.v1.management_schemas import TagChange, TagRead, format_date
from moorage.auth.permissions import API_WRITE, PULL
from moorage.errors import InvalidRequest
from moorage.oci.digest import Digest
from moorage.services.registry import RegistryServices
from moorage.services.tags import DEFAULT_PAGE_SIZE, MAX_CONFIG_BYTES, ConfigReader, TagEntry

# (page - 1) * page size becomes an SQL OFFSET: keep it far inside 64 bits.
MAX_PAGE = 2**31 - 1

router = APIRouter(tags=["tag"], dependencies=[Depends(writable)])
log = logging.getLogger(__name__)


class TagReadWithPlatforms(TagRead):
    architectures: list[str] = Field(
        default_factory=list,
        description="Moorage extension: platforms of an index, or the image's architecture",
    )


class TagListWithPlatforms(BaseModel):
    tags: list[TagReadWithPlatforms]
    page: int
    has_additional: bool


def config_reader(registry: RegistryServices) -> ConfigReader:
    """Reads image configs from storage for the tag list's ``architectures``."""

    async def read(digest: str) -> bytes | None:
        data = bytearray()
        try:
            async for chunk in registry.blobs.read(Digest.parse(digest), 0, MAX_CONFIG_BYTES + 1):
                data += chunk
        except Exception:  # best effort: a tag list never fails over its architectures
            log.warning("cannot read image config %s for the tag list", digest, exc_info=True)
            return None
        return bytes(data) if len(data) <= MAX_CONFIG_BYTES else None

    return read


def tag_read(tag: TagEntry) -> TagReadWithPlatforms:
    start = tag.start_ms // 1000
    end = tag.end_ms // 1000 if tag.end_ms is not None else None
    return TagReadWithPlatforms(
        name=tag.name,
        start_ts=start if start > 0 else None,
        end_ts=end if end else None,
        manifest_digest=tag.manifest_digest,
        is_manifest_list=tag.is_manifest_list,
        size=tag.size,
        last_modified=format_date(start) if start > 0 else None,
        expiration=format_date(end) if end is not None else None,
        architectures=list(tag.architectures),
    )


@router.get("/repository/{namespace}/{repository}/tag/", response_model=TagListWithPlatforms)
async def list_repository_tags(
    namespace: str,
    repository: str,
    principal: PrincipalDep,
    access: AccessDep,
    management: ManagementDep,
    registry: RegistryDep,
    page: int = Query(1, le=MAX_PAGE, description="1-based page index"),
    limit: int = Query(DEFAULT_PAGE_SIZE, description="page size, at most 100"),
    specific_tag: str = Query("", alias="specificTag", description="only this tag's history"),
    only_active: bool = Query(False, alias="onlyActiveTags", description="only alive tags"),
) -> TagListWithPlatforms:
    await check_repo(access, principal, namespace, repository, PULL)
    history = await management.tags.history(
        namespace,
        repository,
        page=page,
        limit=limit,
        specific_tag=specific_tag or None,
        active_only=only_active,
        read_config=config_reader(registry),
    )
    return TagListWithPlatforms(
        tags=[tag_read(t) for t in history.tags],
        page=history.page,
        has_additional=history.has_additional,
    )


@router.put("/repository/{namespace}/{repository}/tag/{tag}", status_code=201, response_model=str)
async def change_tag(
    namespace: str,
    repository: str,
    tag: str,
    body: TagChange,
    principal: PrincipalDep,
    access: AccessDep,
    actor: ActorDep,
    management: ManagementDep,
) -> str:
    """Point ``tag`` at ``manifest_digest`` (a manifest stored in this repository)."""
    facts = await check_repo(access, principal, namespace, repository, API_WRITE)
    require_normal(facts)
    if body.expiration is not None:
        raise InvalidRequest("Tag expiration is not supported")
    if body.manifest_digest is not None:
        await management.tags.change(namespace, repository, tag, body.manifest_digest, actor)
    return "Updated"


@router.delete("/repository/{namespace}/{repository}/tag/{tag}", status_code=204)
async def delete_tag(
    namespace: str,
    repository: str,
    tag: str,
    principal: PrincipalDep,
    access: AccessDep,
    actor: ActorDep,
    management: ManagementDep,
) -> Response:
    facts = await check_repo(access, principal, namespace, repository, API_WRITE)
    require_normal(facts)
    await management.tags.delete(namespace, repository, tag, actor)
    return Response(status_code=204)
