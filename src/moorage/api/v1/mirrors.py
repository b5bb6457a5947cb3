"""/api/v1/repository/{ns}/{repo}/mirror — Quay's repository mirror API, plus run history."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from moorage.api.v1.deps import ActorDep, writable
from moorage.api.v1.guards import AdminRepo
from moorage.api.v1.mirror_schema import CREATE_SCHEMA, UPDATE_SCHEMA, validate
from moorage.api.v1.schemas import MAX_INT64, contains_nul
from moorage.db.models import MirrorRun, SyncStatus
from moorage.errors import InvalidRequest
from moorage.services.mirror_rules import format_date
from moorage.services.mirrors import MirrorService, MirrorView

router = APIRouter(tags=["mirror"], dependencies=[Depends(writable)])
PATH = "/repository/{namespace}/{repository}/mirror"


def service(request: Request) -> MirrorService:
    value: MirrorService = request.app.state.mirrors
    return value


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, too deep, huge number
        raise InvalidRequest("Missing JSON body") from exc
    if contains_nul(_without_checked_fields(body)):
        raise InvalidRequest("NUL characters are not allowed")
    return body


# Fields whose own validation refuses control characters with Quay's texts (the reference
# and the robot name): their NUL characters get those texts, not the generic one.
_CHECKED_FIELDS = ("external_reference", "robot_username")


def _without_checked_fields(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    return {k: v for k, v in body.items() if k not in _CHECKED_FIELDS or not isinstance(v, str)}


def run_body(run: MirrorRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "trigger": run.trigger,
        "started": format_date(run.started_at),
        "finished": format_date(run.finished_at),
        "tags_total": run.tags_total,
        "tags_copied": run.tags_copied,
        "tags_skipped": run.tags_skipped,
        "tags_failed": run.tags_failed,
        "tags_deleted": run.tags_deleted,
        "bytes": run.bytes_copied,
        "error_kind": run.error_kind,
        "error_message": run.error_message,
    }


def mirror_body(view: MirrorView) -> dict[str, Any]:
    config = view.config
    last = view.last_run
    return {
        "is_enabled": config.is_enabled,
        "mirror_type": "PULL",
        "external_reference": config.external_reference,
        "external_registry_username": view.username,
        "external_registry_config": config.external_registry_config or {},
        "sync_interval": config.sync_interval,
        "sync_start_date": format_date(config.sync_start_date),
        "sync_expiration_date": format_date(config.sync_expiration_date),
        "sync_retries_remaining": config.sync_retries_remaining,
        "sync_status": SyncStatus(config.sync_status).name,
        "root_rule": {"rule_kind": config.rule_kind, "rule_value": list(config.rule_value)},
        "robot_username": view.robot_username,
        "skopeo_timeout_interval": config.skopeo_timeout,
        "architecture_filter": list(config.architecture_filter or []),
        # Moorage extensions (clients ignore unknown keys):
        "last_sync": run_body(last) if last else None,
        "current_sync": run_body(view.current_run) if view.current_run else None,
        "last_error": (
            {
                "kind": last.error_kind,
                "message": last.error_message,
                "time": format_date(last.finished_at),
            }
            if last and last.error_kind
            else None
        ),
    }


@router.get(PATH, summary="getRepoMirrorConfig")
async def get_mirror(repo: AdminRepo, request: Request) -> dict[str, Any]:
    return mirror_body(await service(request).get(repo.namespace, repo.name))


@router.post(
    PATH,
    status_code=201,
    summary="createRepoMirrorConfig",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": CREATE_SCHEMA}}}},
)
async def create_mirror(repo: AdminRepo, request: Request, actor: ActorDep) -> Response:
    body = validate(await json_body(request), create=True)
    await service(request).create(repo.namespace, repo.name, body, actor)
    return Response(status_code=201)


@router.put(
    PATH,
    status_code=201,
    summary="changeRepoMirrorConfig",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": UPDATE_SCHEMA}}}},
)
async def change_mirror(repo: AdminRepo, request: Request, actor: ActorDep) -> Response:
    body = validate(await json_body(request), create=False)
    await service(request).update(repo.namespace, repo.name, body, actor)
    return Response(status_code=201)


@router.post(f"{PATH}/sync-now", status_code=204, summary="syncNow")
async def sync_now(repo: AdminRepo, request: Request, actor: ActorDep) -> Response:
    await service(request).sync_now(repo.namespace, repo.name, actor)
    return Response(status_code=204)


@router.post(f"{PATH}/sync-cancel", status_code=204, summary="syncCancel")
async def sync_cancel(repo: AdminRepo, request: Request, actor: ActorDep) -> Response:
    await service(request).cancel(repo.namespace, repo.name, actor)
    return Response(status_code=204)


@router.get(f"{PATH}/runs", summary="listRepoMirrorRuns (Moorage extension)")
async def list_runs(
    repo: AdminRepo,
    request: Request,
    limit: int = Query(20, ge=1, le=200),
    before: int | None = Query(None, ge=1, le=MAX_INT64, description="only runs with a smaller id"),
) -> dict[str, Any]:
    runs = await service(request).runs(repo.namespace, repo.name, limit, before)
    return {
        "runs": [run_body(r) for r in runs],
        "next_before": runs[-1].id if len(runs) == limit else None,
    }
