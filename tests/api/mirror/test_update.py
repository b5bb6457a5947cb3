"""PUT /api/v1/repository/{ns}/{repo}/mirror: Quay's changeRepoMirrorConfig rules (§1.3).

Partial update: only present keys change; everything is checked before anything changes.
"""

from __future__ import annotations

from typing import Any

import pytest

from moorage.db.models import RepoRole
from tests.api.mirror.conftest import (
    NS,
    ROBOT,
    MirrorEnv,
    assert_error,
    assert_schema_error,
)

pytestmark = pytest.mark.anyio

NEED_USERNAME = "Unable to set a new password without also specifying a username."
DELETE_USERNAME = "Unable to delete username while setting a password."
PROXY = {
    "http_proxy": "http://insecure.proxy.corp",
    "https_proxy": "https://secure.proxy.corp",
    "no_proxy": "mylocalhost",
}


@pytest.fixture
async def mirror(env: MirrorEnv) -> MirrorEnv:
    await env.create_mirror(
        external_registry_username="fakeUsername", external_registry_password="fakePassword"
    )
    return env


async def stored_password(env: MirrorEnv) -> str | None:
    row = await env.config_row()
    assert row is not None
    return row.external_registry_password


async def test_put_returns_201_empty(mirror: MirrorEnv) -> None:
    response = await mirror.put({"is_enabled": False})
    assert response.status_code == 201
    assert response.content == b""
    assert (await mirror.mirror())["is_enabled"] is False


async def test_empty_put_changes_nothing(mirror: MirrorEnv) -> None:
    before = await mirror.mirror()
    assert (await mirror.put({})).status_code == 201
    assert await mirror.mirror() == before


async def test_put_without_mirror_is_404(env: MirrorEnv) -> None:
    assert_error(await env.put({"is_enabled": False}), 404, "Not Found")


async def test_put_repository_missing_is_404(env: MirrorEnv) -> None:
    response = await env.http.put(
        f"/api/v1/repository/{NS}/nosuchrepo/mirror", json={}, headers=env.auth()
    )
    assert_error(response, 404, "Not Found")


async def test_put_missing_json_body(mirror: MirrorEnv) -> None:
    assert_error(await mirror.put(None), 400, "Missing JSON body")


@pytest.mark.parametrize(
    ("body", "first_line"),
    [
        ({"is_enabled": None}, "None is not of type 'boolean'"),
        ({"external_registry_config": {"verify_tls": None}}, "None is not of type 'boolean'"),
        ({"external_reference": 5}, "5 is not of type 'string'"),
        ({"external_registry_username": 123}, "123 is not of type 'string', 'null'"),
        ({"external_registry_password": 41}, "'********' is not of type 'string', 'null'"),
        ({"sync_interval": -5}, "-5 is less than the minimum of 1"),
        ({"sync_interval": 0}, "0 is less than the minimum of 1"),
        ({"sync_interval": "abc"}, "'abc' is not of type 'integer'"),
        ({"skopeo_timeout_interval": 60}, "60 is less than the minimum of 300"),
        ({"architecture_filter": "amd64"}, "'amd64' is not of type 'array', 'null'"),
        ({"root_rule": {"rule_kind": "tag_glob_csv"}}, "'rule_value' is a required property"),
        (
            {"root_rule": {"rule_kind": "incorrect", "rule_value": ["a"]}},
            "'incorrect' is not one of ['tag_glob_csv']",
        ),
        ({"root_rule": {"rule": "a", "rule_type": "TAG"}}, "'rule_kind' is a required property"),
    ],
)
async def test_put_schema_errors(mirror: MirrorEnv, body: dict[str, Any], first_line: str) -> None:
    before = await mirror.mirror()
    assert_schema_error(await mirror.put(body), first_line)
    assert await mirror.mirror() == before


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"sync_start_date": "January 1 2020"}, "Incorrect DateTime format for sync_start_date."),
        (
            {"sync_start_date": "2020-01-01T00:00:00.00Z"},
            "Incorrect DateTime format for sync_start_date.",
        ),
        ({"architecture_filter": ["mips", "amd64"]}, "Invalid architectures: mips"),
        ({"root_rule": {"rule_kind": "tag_glob_csv", "rule_value": []}}, None),
        ({"robot_username": "norobot"}, "Invalid robot"),
        ({"robot_username": "a+b+c"}, "Invalid robot"),
        ({"robot_username": f"{NS}+nosuch"}, "Could not find robot with specified username"),
        ({"external_reference": "10.0.0.1/x"}, "The provided registry location is not allowed"),
        (
            {"external_reference": "https://quay.io/x"},
            "External registry reference must not include a URL scheme",
        ),
    ],
)
async def test_put_handler_errors(
    mirror: MirrorEnv, body: dict[str, Any], text: str | None
) -> None:
    text = text or (
        "validation failed: rule_value for TAG_GLOB_CSV must be a list with at least one rule"
    )
    before = await mirror.mirror()
    assert_error(await mirror.put(body), 400, text)
    assert await mirror.mirror() == before


async def test_put_validates_everything_before_changing(mirror: MirrorEnv) -> None:
    before = await mirror.mirror()
    body = {"is_enabled": False, "sync_interval": 60, "robot_username": f"{NS}+nosuch"}
    assert (await mirror.put(body)).status_code == 400
    assert await mirror.mirror() == before


# --- credentials ---------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["newPassword", None, ""])
async def test_password_needs_username_key(mirror: MirrorEnv, password: str | None) -> None:
    before = await stored_password(mirror)
    assert_error(await mirror.put({"external_registry_password": password}), 400, NEED_USERNAME)
    assert await stored_password(mirror) == before


async def test_cannot_delete_username_while_setting_password(mirror: MirrorEnv) -> None:
    body = {"external_registry_username": None, "external_registry_password": "x"}
    assert_error(await mirror.put(body), 400, DELETE_USERNAME)


async def test_username_only_keeps_password(mirror: MirrorEnv) -> None:
    before = await stored_password(mirror)
    assert before is not None
    assert (await mirror.put({"external_registry_username": "otherUser"})).status_code == 201
    assert (await mirror.mirror())["external_registry_username"] == "otherUser"
    assert await stored_password(mirror) == before  # the encrypted column is untouched


async def test_username_with_null_password_clears_password(mirror: MirrorEnv) -> None:
    body = {"external_registry_username": "otherUser", "external_registry_password": None}
    assert (await mirror.put(body)).status_code == 201
    assert await stored_password(mirror) is None
    assert (await mirror.mirror())["external_registry_username"] == "otherUser"


async def test_null_username_and_null_password_clear_both(mirror: MirrorEnv) -> None:
    body = {"external_registry_username": None, "external_registry_password": None}
    assert (await mirror.put(body)).status_code == 201
    row = await mirror.config_row()
    assert row is not None
    assert (row.external_registry_username, row.external_registry_password) == (None, None)
    assert (await mirror.mirror())["external_registry_username"] is None


async def test_set_both_credentials(mirror: MirrorEnv) -> None:
    before = await stored_password(mirror)
    body = {"external_registry_username": "u2", "external_registry_password": "p2-secret"}
    response = await mirror.put(body)
    assert response.status_code == 201
    after = await stored_password(mirror)
    assert after is not None
    assert after != before
    assert after.startswith("v0$$")
    assert "p2-secret" not in after
    get = await mirror.get()
    assert "external_registry_password" not in get.json()
    assert "p2-secret" not in get.text
    assert "fakePassword" not in get.text


# --- nested external_registry_config -------------------------------------------------------------


async def test_config_keys_merge_one_by_one(mirror: MirrorEnv) -> None:
    assert (
        await mirror.put({"external_registry_config": {"verify_tls": False}})
    ).status_code == 201
    assert (await mirror.mirror())["external_registry_config"] == {"verify_tls": False}
    await mirror.put({"external_registry_config": {"unsigned_images": True}})
    assert (await mirror.mirror())["external_registry_config"] == {
        "verify_tls": False,
        "unsigned_images": True,
    }


async def test_proxy_keys_all_kept_on_first_write(mirror: MirrorEnv) -> None:
    """Quay bug B4 lost http_proxy when the stored config had no proxy key yet."""
    await mirror.put({"external_registry_config": {"proxy": PROXY}})
    assert (await mirror.mirror())["external_registry_config"] == {"proxy": PROXY}


async def test_proxy_keys_merge_individually(mirror: MirrorEnv) -> None:
    await mirror.put({"external_registry_config": {"proxy": {"http_proxy": "http://a.corp"}}})
    assert (await mirror.mirror())["external_registry_config"] == {
        "proxy": {"http_proxy": "http://a.corp"}
    }
    await mirror.put({"external_registry_config": {"proxy": {"no_proxy": "local"}}})
    await mirror.put(
        {"external_registry_config": {"verify_tls": True, "proxy": {"https_proxy": None}}}
    )
    assert (await mirror.mirror())["external_registry_config"] == {
        "verify_tls": True,
        "proxy": {"http_proxy": "http://a.corp", "no_proxy": "local", "https_proxy": None},
    }


# --- other fields --------------------------------------------------------------------------------


async def test_null_architecture_filter_stored_as_empty(mirror: MirrorEnv) -> None:
    await mirror.put({"architecture_filter": ["amd64", "s390x"]})
    assert (await mirror.mirror())["architecture_filter"] == ["amd64", "s390x"]
    assert (await mirror.put({"architecture_filter": None})).status_code == 201
    assert (await mirror.mirror())["architecture_filter"] == []
    row = await mirror.config_row()
    assert row is not None
    assert row.architecture_filter == []


@pytest.mark.parametrize("config_overrides", [{"FEATURE_SPARSE_INDEX": False}])
async def test_put_architecture_filter_needs_sparse_index(mirror: MirrorEnv) -> None:
    assert_error(
        await mirror.put({"architecture_filter": ["amd64"]}),
        400,
        "Architecture filtering requires FEATURE_SPARSE_INDEX to be enabled.",
    )
    assert (await mirror.put({"architecture_filter": []})).status_code == 201


async def test_put_changes_each_field(mirror: MirrorEnv) -> None:
    body = {
        "is_enabled": False,
        "external_reference": "registry.example.com/library/nginx",
        "sync_start_date": "2098-05-06T07:08:09Z",
        "sync_interval": 60,
        "skopeo_timeout_interval": 900,
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["1.*", "stable"]},
    }
    assert (await mirror.put(body)).status_code == 201
    got = await mirror.mirror()
    assert {k: got[k] for k in body} == body
    assert got["sync_status"] == "NEVER_RUN"


async def test_put_changes_robot_and_grants_write(mirror: MirrorEnv) -> None:
    other = await mirror.robot(NS, "second")
    await mirror.set_role(other, RepoRole.READ)
    assert (await mirror.put({"robot_username": other})).status_code == 201
    assert (await mirror.mirror())["robot_username"] == other
    assert await mirror.role(other) == RepoRole.WRITE
    assert await mirror.role(ROBOT) == RepoRole.WRITE  # the previous robot keeps its permission


async def test_put_robot_of_another_namespace(mirror: MirrorEnv) -> None:
    await mirror.user("outsider")
    other = await mirror.robot("outsider", "bot")
    assert_error(await mirror.put({"robot_username": other}), 400, "Invalid robot")
    assert (await mirror.mirror())["robot_username"] == ROBOT


async def test_put_ignores_unknown_keys(mirror: MirrorEnv) -> None:
    body = {"sync_status": "SUCCESS", "mirror_type": "PULL", "last_sync": None, "bogus": 1}
    assert (await mirror.put(body)).status_code == 201
    assert (await mirror.mirror())["sync_status"] == "NEVER_RUN"
