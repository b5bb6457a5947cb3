"""/api/v1/repository/{ns}/{repo}/notification/ — Quay's repository notification API.

Events: the mirror sync events (repo_mirror_sync_started, _success, _failed); method: webhook.
Every route needs admin rights on the repository (Quay's require_repo_admin).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match

from moorage.api.v1.deps import ActorDep, writable
from moorage.api.v1.guards import AdminRepo
from moorage.api.v1.mirrors import json_body
from moorage.errors import InvalidRequest
from moorage.services import notification_events as ev
from moorage.services.notifications import NotificationService, notification_body

router = APIRouter(tags=["notification"], dependencies=[Depends(writable)])
PATH = "/repository/{namespace}/{repository}/notification"

# Quay's NotificationCreateRequest (unknown keys are ignored, as in Quay).
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Information for creating a notification on a repository",
    "required": ["event", "method", "config", "eventConfig"],
    "properties": {
        "event": {
            "type": "string",
            "description": "The event on which the notification will respond",
            "enum": list(ev.EVENTS),
        },
        "method": {
            "type": "string",
            "description": "The method of notification",
            "enum": list(ev.METHODS),
        },
        "config": {
            "type": "object",
            "description": 'JSON config information for the method: {"url": ...} for webhook',
        },
        "eventConfig": {
            "type": "object",
            "description": "JSON config information for the specific event of notification",
        },
        "title": {"type": "string", "description": "The human-readable title"},
    },
}
# Validated without the enums: an unknown event or method gets the service's clearer message.
_VALIDATOR = Draft4Validator(
    {
        **CREATE_SCHEMA,
        "properties": {
            key: {k: v for k, v in value.items() if k != "enum"}
            for key, value in CREATE_SCHEMA["properties"].items()
        },
    }
)


def service(request: Request) -> NotificationService:
    value: NotificationService = request.app.state.notifications
    return value


def validate(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Missing JSON body")
    error = best_match(_VALIDATOR.iter_errors(body))
    if error is not None:
        raise InvalidRequest(str(error))
    return body


@router.get(f"{PATH}/", summary="listRepoNotifications")
async def list_notifications(repo: AdminRepo, request: Request) -> dict[str, Any]:
    found = await service(request).list(repo.namespace, repo.name)
    return {"notifications": [notification_body(n) for n in found]}


@router.post(
    f"{PATH}/",
    status_code=201,
    summary="createRepoNotification",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": CREATE_SCHEMA}}}},
)
async def create_notification(repo: AdminRepo, request: Request, actor: ActorDep) -> dict[str, Any]:
    body = validate(await json_body(request))
    created = await service(request).create(repo.namespace, repo.name, body, actor)
    return notification_body(created)


@router.get(f"{PATH}/{{uuid}}", summary="getRepoNotification")
async def get_notification(repo: AdminRepo, request: Request, uuid: str) -> dict[str, Any]:
    return notification_body(await service(request).get(repo.namespace, repo.name, uuid))


@router.delete(f"{PATH}/{{uuid}}", status_code=204, summary="deleteRepoNotification")
async def delete_notification(
    repo: AdminRepo, request: Request, actor: ActorDep, uuid: str
) -> Response:
    await service(request).delete(repo.namespace, repo.name, uuid, actor)
    return Response(status_code=204)


@router.post(f"{PATH}/{{uuid}}", status_code=204, summary="resetRepositoryNotificationFailures")
async def reset_failures(repo: AdminRepo, request: Request, actor: ActorDep, uuid: str) -> Response:
    await service(request).reset_failures(repo.namespace, repo.name, uuid, actor)
    return Response(status_code=204)


@router.post(f"{PATH}/{{uuid}}/test", summary="testRepoNotification")
async def test_notification(repo: AdminRepo, request: Request, uuid: str) -> dict[str, Any]:
    await service(request).queue_test(repo.namespace, repo.name, uuid)
    return {}
