"""Audit entries of the mirror API (§4.11): repo_mirror_config_changed with changed/to per field,
sync_status SYNC_NOW / SYNC_CANCEL, change_repo_state; credentials never appear.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from moorage.db.models import AuditLog
from tests.api.mirror.conftest import LOCAL_HOSTS, LOCAL_SOURCE, NS, REPO, REPO_URL, MirrorEnv

pytestmark = pytest.mark.anyio

CHANGED = "repo_mirror_config_changed"
PASSWORDS = ("first-Secret-pw", "second-Secret-pw")


def changes(entries: list[AuditLog]) -> list[tuple[str, Any]]:
    return [(e.metadata_json["changed"], e.metadata_json["to"]) for e in entries]


def assert_no_credentials(entries: list[AuditLog]) -> None:
    dumped = json.dumps([e.metadata_json for e in entries])
    for secret in PASSWORDS:
        assert secret not in dumped
    assert "v0$$" not in dumped
    for entry in entries:
        assert "external_registry_password" not in entry.metadata_json
        assert "password" not in entry.metadata_json


async def test_post_logs_external_reference(env: MirrorEnv) -> None:
    await env.create_mirror(
        external_registry_username="someone", external_registry_password=PASSWORDS[0]
    )
    entries = await env.audit(CHANGED)
    assert changes(entries) == [("external_reference", "quay.io/redhat/quay")]
    entry = entries[0]
    assert (entry.namespace, entry.repository, entry.performer) == (NS, REPO, NS)
    assert entry.metadata_json["namespace"] == NS
    assert entry.metadata_json["repo"] == REPO
    assert_no_credentials(await env.audit())


async def test_put_logs_every_changed_field(env: MirrorEnv) -> None:
    await env.create_mirror()
    other = await env.robot(NS, "second")
    before = len(await env.audit(CHANGED))
    body = {
        "is_enabled": False,
        "external_reference": "registry.example.com/library/nginx",
        "robot_username": other,
        "sync_start_date": "2098-05-06T07:08:09Z",
        "sync_interval": 60,
        "skopeo_timeout_interval": 900,
        "architecture_filter": ["amd64"],
        "external_registry_username": "someone",
        "external_registry_password": PASSWORDS[0],
        "external_registry_config": {
            "verify_tls": False,
            "unsigned_images": True,
            "proxy": {"http_proxy": "http://p", "https_proxy": "https://p", "no_proxy": "x"},
        },
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["1.*"]},
    }
    assert (await env.put(body)).status_code == 201
    logged = dict(changes((await env.audit(CHANGED))[before:]))
    assert logged == {
        "is_enabled": False,
        "external_reference": "registry.example.com/library/nginx",
        "robot_username": other,
        "sync_start_date": "2098-05-06T07:08:09Z",
        "sync_interval": 60,
        "skopeo_timeout_interval": 900,
        "architecture_filter": ["amd64"],
        "external_registry_username": "someone",
        "external_registry_password": "********",
        "verify_tls": False,
        "unsigned_images": True,
        "http_proxy": "http://p",
        "https_proxy": "https://p",
        "no_proxy": "x",
        "mirror_rule": ["1.*"],
    }
    assert_no_credentials(await env.audit())


async def test_password_change_and_removal_are_masked(env: MirrorEnv) -> None:
    await env.create_mirror(external_registry_username="u", external_registry_password=PASSWORDS[0])
    before = len(await env.audit(CHANGED))
    body = {"external_registry_username": "u", "external_registry_password": PASSWORDS[1]}
    assert (await env.put(body)).status_code == 201
    body = {"external_registry_username": "u", "external_registry_password": None}
    assert (await env.put(body)).status_code == 201
    logged = changes((await env.audit(CHANGED))[before:])
    assert logged == [
        ("external_registry_username", "u"),
        ("external_registry_password", "********"),
        ("external_registry_username", "u"),
        ("external_registry_password", None),
    ]
    assert_no_credentials(await env.audit())


async def test_username_only_logs_no_password_entry(env: MirrorEnv) -> None:
    await env.create_mirror(external_registry_username="u", external_registry_password=PASSWORDS[0])
    before = len(await env.audit(CHANGED))
    assert (await env.put({"external_registry_username": "v"})).status_code == 201
    assert changes((await env.audit(CHANGED))[before:]) == [("external_registry_username", "v")]


async def test_failed_put_logs_nothing(env: MirrorEnv) -> None:
    await env.create_mirror()
    before = await env.audit()
    body = {"is_enabled": False, "external_reference": "10.0.0.1/x"}
    assert (await env.put(body)).status_code == 400
    assert [e.id for e in await env.audit()] == [e.id for e in before]


@pytest.mark.parametrize("config_overrides", [LOCAL_HOSTS])
async def test_sync_now_and_cancel(env: MirrorEnv) -> None:
    await env.create_mirror(external_reference=LOCAL_SOURCE)
    before = len(await env.audit(CHANGED))
    assert (await env.post(path="/sync-now")).status_code == 204
    assert (await env.post(path="/sync-cancel")).status_code == 204
    assert (await env.post(path="/sync-cancel")).status_code == 404  # refused: not logged
    logged = changes((await env.audit(CHANGED))[before:])
    assert logged == [("sync_status", "SYNC_NOW"), ("sync_status", "SYNC_CANCEL")]


async def test_changestate_logs_change_repo_state(env: MirrorEnv) -> None:
    await env.create_mirror()
    for state in ("NORMAL", "READ_ONLY", "MIRROR"):
        response = await env.http.put(
            f"{REPO_URL}/changestate", json={"state": state}, headers=env.auth()
        )
        assert response.status_code == 200
        assert response.json() == {"success": True}
        assert await env.repo_state() == state
    entries = await env.audit("change_repo_state")
    assert [e.metadata_json["state_changed"] for e in entries] == ["NORMAL", "READ_ONLY", "MIRROR"]
    for entry in entries:
        assert entry.metadata_json["repo"] == REPO
        assert entry.metadata_json["namespace"] == NS
        assert entry.performer == NS


@pytest.mark.parametrize("state", ["ORG_MIRROR", "MARKED_FOR_DELETION", "normal", None])
async def test_changestate_rejects_other_states(env: MirrorEnv, state: str | None) -> None:
    response = await env.http.put(
        f"{REPO_URL}/changestate", json={"state": state}, headers=env.auth()
    )
    assert response.status_code == 400
    assert await env.repo_state() == "NORMAL"
    assert await env.audit("change_repo_state") == []
