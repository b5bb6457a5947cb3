"""POST /api/v1/repository/{ns}/{repo}/mirror: every rule of Quay's createRepoMirrorConfig (§1.2).

Moorage departures checked here: sync_interval must be >= 1, robot_username is required by the
schema (400, not 500), skopeo_timeout_interval may be omitted (default 300), unknown top-level
keys are ignored (Quay answers 500), a failed POST leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

import pytest

from moorage.db.models import RepoRole
from tests.api.mirror.conftest import (
    DROP,
    FAR_FUTURE,
    LOCAL_HOSTS,
    LOCAL_SOURCE,
    NS,
    ROBOT,
    MirrorEnv,
    assert_error,
    assert_schema_error,
    mirror_body,
)

pytestmark = pytest.mark.anyio

BAD_DATE = "Incorrect DateTime format for sync_start_date."
EMPTY_RULE = "validation failed: rule_value for TAG_GLOB_CSV must be a list with at least one rule"
SPARSE_OFF = "Architecture filtering requires FEATURE_SPARSE_INDEX to be enabled."


async def test_minimal_body_creates_mirror(env: MirrorEnv) -> None:
    response = await env.post(mirror_body())
    assert response.status_code == 201
    assert response.content == b""
    assert await env.mirror() == {
        "is_enabled": True,
        "mirror_type": "PULL",
        "external_reference": "quay.io/redhat/quay",
        "external_registry_username": None,
        "external_registry_config": {},
        "sync_interval": 5000,
        "sync_start_date": FAR_FUTURE,
        "sync_expiration_date": None,
        "sync_retries_remaining": 3,
        "sync_status": "NEVER_RUN",
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["latest", "3.3*"]},
        "robot_username": ROBOT,
        "skopeo_timeout_interval": 300,
        "architecture_filter": [],
        "last_sync": None,
        "current_sync": None,
        "last_error": None,
    }


async def test_post_switches_repository_to_mirror_state(env: MirrorEnv) -> None:
    assert await env.repo_state() == "NORMAL"
    await env.create_mirror()
    assert await env.repo_state() == "MIRROR"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, RepoRole.WRITE),
        (RepoRole.READ, RepoRole.WRITE),
        (RepoRole.WRITE, RepoRole.WRITE),
        (RepoRole.ADMIN, RepoRole.ADMIN),
    ],
)
async def test_post_grants_robot_write(
    env: MirrorEnv, before: RepoRole | None, after: RepoRole
) -> None:
    if before is not None:
        await env.set_role(ROBOT, before)
    assert await env.role(ROBOT) == before
    await env.create_mirror()
    assert await env.role(ROBOT) == after


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"content": b"{not json"}, {"content": b"null"}, {"json": ["a", "list"]}],
    ids=["no-body", "invalid-json", "null", "array"],
)
async def test_missing_json_body(env: MirrorEnv, kwargs: dict[str, Any]) -> None:
    headers = {**env.auth(), "Content-Type": "application/json"}
    response = await env.http.post(
        f"/api/v1/repository/{NS}/mirrored/mirror", headers=headers, **kwargs
    )
    assert_error(response, 400, "Missing JSON body")
    assert response.json()["error_type"] == "invalid_request"


@pytest.mark.parametrize(
    "key", ["external_reference", "sync_interval", "sync_start_date", "root_rule", "robot_username"]
)
async def test_required_properties(env: MirrorEnv, key: str) -> None:
    response = await env.post(mirror_body(**{key: DROP}))
    assert_schema_error(response, f"'{key}' is a required property")
    assert await env.mirror_count() == 0


async def test_skopeo_timeout_may_be_omitted_default_300(env: MirrorEnv) -> None:
    """Moorage: optional on POST, because the seed document's own curl omits it."""
    await env.create_mirror(skopeo_timeout_interval=DROP)
    assert (await env.mirror())["skopeo_timeout_interval"] == 300


# --- root_rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "first_line"),
    [
        ({"rule": "latest", "rule_type": "TAG_GLOB_CSV"}, "'rule_kind' is a required property"),
        (
            {"rule_kind": "incorrect", "rule_value": ["latest"]},
            "'incorrect' is not one of ['tag_glob_csv']",
        ),
        ({"rule_kind": "tag_glob_csv"}, "'rule_value' is a required property"),
        ({"rule_kind": "tag_glob_csv", "rule_value": "latest"}, "'latest' is not of type 'array'"),
        ({"rule_kind": "tag_glob_csv", "rule_value": [1]}, "1 is not of type 'string'"),
        ("latest", "'latest' is not of type 'object'"),
    ],
    ids=["seed-doc-shape", "incorrect-kind", "no-value", "string-value", "int-item", "string"],
)
async def test_root_rule_schema(env: MirrorEnv, rule: Any, first_line: str) -> None:
    assert_schema_error(await env.post(mirror_body(root_rule=rule)), first_line)


async def test_root_rule_empty_value(env: MirrorEnv) -> None:
    response = await env.post(
        mirror_body(root_rule={"rule_kind": "tag_glob_csv", "rule_value": []})
    )
    assert_error(response, 400, EMPTY_RULE)
    assert response.json()["error_type"] == "invalid_request"


# --- sync_start_date, sync_interval, skopeo_timeout_interval ----------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "January 1 2020",
        "2020-01-01T00:00:00.00Z",
        "Wed, 01 Jan 2020 00:00:00 +0000",
        "not-a-date",
        "2020-01-01T00:00:00",
        "2020-01-01T00:00:00+00:00",
        "2020-01-01",
        "",
    ],
)
async def test_sync_start_date_rejected(env: MirrorEnv, value: str) -> None:
    assert_error(await env.post(mirror_body(sync_start_date=value)), 400, BAD_DATE)
    assert await env.mirror_count() == 0


async def test_sync_start_date_must_be_string(env: MirrorEnv) -> None:
    assert_schema_error(
        await env.post(mirror_body(sync_start_date=20200101)), "20200101 is not of type 'string'"
    )


@pytest.mark.parametrize("config_overrides", [LOCAL_HOSTS])
async def test_sync_start_date_past_accepted(env: MirrorEnv) -> None:
    await env.create_mirror(
        sync_start_date="2020-01-01T00:00:00Z", is_enabled=False, external_reference=LOCAL_SOURCE
    )
    assert (await env.mirror())["sync_start_date"] == "2020-01-01T00:00:00Z"


@pytest.mark.parametrize("value", [0, -5])
async def test_sync_interval_below_one(env: MirrorEnv, value: int) -> None:
    """Moorage: minimum 1 (Quay accepts 0 and then divides by zero in the worker)."""
    response = await env.post(mirror_body(sync_interval=value))
    assert_schema_error(response, f"{value} is less than the minimum of 1")


@pytest.mark.parametrize(
    ("value", "first_line"),
    [("abc", "'abc' is not of type 'integer'"), (1.5, "1.5 is not of type 'integer'")],
)
async def test_sync_interval_type(env: MirrorEnv, value: Any, first_line: str) -> None:
    assert_schema_error(await env.post(mirror_body(sync_interval=value)), first_line)


async def test_sync_interval_one_accepted(env: MirrorEnv) -> None:
    await env.create_mirror(sync_interval=1)
    assert (await env.mirror())["sync_interval"] == 1


@pytest.mark.parametrize("value", [60, 299, 0])
async def test_skopeo_timeout_below_300(env: MirrorEnv, value: int) -> None:
    response = await env.post(mirror_body(skopeo_timeout_interval=value))
    assert_schema_error(response, f"{value} is less than the minimum of 300")


@pytest.mark.parametrize("value", [300, 7200])
async def test_skopeo_timeout_accepted(env: MirrorEnv, value: int) -> None:
    await env.create_mirror(skopeo_timeout_interval=value)
    assert (await env.mirror())["skopeo_timeout_interval"] == value


# --- architecture_filter -------------------------------------------------------------------------


async def test_architecture_filter_string_rejected(env: MirrorEnv) -> None:
    response = await env.post(mirror_body(architecture_filter="amd64"))
    assert_schema_error(response, "'amd64' is not of type 'array', 'null'")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (["mips"], "Invalid architectures: mips"),
        (["sparc", "amd64", "mips"], "Invalid architectures: mips, sparc"),
        (["AMD64"], "Invalid architectures: AMD64"),
    ],
)
async def test_architecture_filter_unknown(env: MirrorEnv, value: list[str], text: str) -> None:
    assert_error(await env.post(mirror_body(architecture_filter=value)), 400, text)
    assert await env.mirror_count() == 0


@pytest.mark.parametrize(
    ("value", "shown"), [([], []), (None, []), (["arm64", "amd64"], ["arm64", "amd64"])]
)
async def test_architecture_filter_accepted(
    env: MirrorEnv, value: list[str] | None, shown: list[str]
) -> None:
    await env.create_mirror(architecture_filter=value)
    assert (await env.mirror())["architecture_filter"] == shown


@pytest.mark.parametrize("config_overrides", [{"FEATURE_SPARSE_INDEX": False}])
async def test_architecture_filter_needs_sparse_index(env: MirrorEnv) -> None:
    response = await env.post(mirror_body(architecture_filter=["amd64"]))
    assert_error(response, 400, SPARSE_OFF)
    # Checked before the architecture names (Quay's order).
    assert_error(await env.post(mirror_body(architecture_filter=["mips"])), 400, SPARSE_OFF)
    await env.create_mirror(architecture_filter=[])
    assert (await env.mirror())["architecture_filter"] == []


# --- robot_username ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["norobot", "a+b+c", f"{NS}+", "+mirrorbot", f"{NS}+mirror+bot"])
async def test_malformed_robot(env: MirrorEnv, name: str) -> None:
    assert_error(await env.post(mirror_body(robot_username=name)), 400, "Invalid robot")
    assert await env.mirror_count() == 0


async def test_unknown_robot(env: MirrorEnv) -> None:
    response = await env.post(mirror_body(robot_username=f"{NS}+nosuchbot"))
    assert_error(response, 400, "Could not find robot with specified username")


async def test_robot_of_another_namespace(env: MirrorEnv) -> None:
    await env.user("outsider")
    other = await env.robot("outsider", "bot")
    assert_error(await env.post(mirror_body(robot_username=other)), 400, "Invalid robot")
    assert await env.role(other) is None


async def test_robot_username_must_be_string(env: MirrorEnv) -> None:
    assert_schema_error(
        await env.post(mirror_body(robot_username=None)), "None is not of type 'string'"
    )


async def test_failed_post_leaves_nothing_behind(env: MirrorEnv) -> None:
    response = await env.post(mirror_body(robot_username=f"{NS}+nosuchbot"))
    assert response.status_code == 400
    assert await env.mirror_count() == 0
    assert await env.config_row() is None
    assert await env.repo_state() == "NORMAL"
    assert await env.audit("repo_mirror_config_changed") == []
    # No orphan: the next valid POST is accepted (not 409).
    await env.create_mirror()
    assert await env.repo_state() == "MIRROR"


# --- other keys, 404, 409 ------------------------------------------------------------------------


async def test_unknown_top_level_keys_ignored(env: MirrorEnv) -> None:
    body = mirror_body(
        sync_status="SUCCESS",
        mirror_type="PULL",
        sync_retries_remaining=0,
        sync_expiration_date="2020-01-01T00:00:00Z",
        last_sync=None,
        totally_unknown={"x": 1},
    )
    assert (await env.post(body)).status_code == 201
    mirror = await env.mirror()
    assert mirror["sync_status"] == "NEVER_RUN"
    assert mirror["sync_retries_remaining"] == 3
    assert mirror["sync_expiration_date"] is None
    assert "totally_unknown" not in mirror


async def test_second_post_conflicts(env: MirrorEnv) -> None:
    await env.create_mirror()
    response = await env.post(mirror_body(external_reference="quay.io/other/repo"))
    assert_error(response, 409, f"Mirror configuration already exits for repository {NS}/mirrored")
    # 409 is decided before the body's values are checked (Quay's order).
    response = await env.post(mirror_body(external_reference="localhost/x"))
    assert response.status_code == 409
    assert (await env.mirror())["external_reference"] == "quay.io/redhat/quay"


async def test_repository_missing(env: MirrorEnv) -> None:
    response = await env.http.post(
        f"/api/v1/repository/{NS}/nosuchrepo/mirror", json=mirror_body(), headers=env.auth()
    )
    assert_error(response, 404, "Not Found")
    assert response.json()["error_type"] == "not_found"


async def test_is_enabled(env: MirrorEnv) -> None:
    assert_schema_error(
        await env.post(mirror_body(is_enabled=None)), "None is not of type 'boolean'"
    )
    await env.create_mirror(is_enabled=False)
    assert (await env.mirror())["is_enabled"] is False


async def test_external_registry_config_stored_verbatim(env: MirrorEnv) -> None:
    config = {
        "verify_tls": True,
        "unsigned_images": False,
        "proxy": {"http_proxy": "http://insecure.proxy.corp", "https_proxy": None},
        "custom": "kept",
    }
    await env.create_mirror(external_registry_config=config)
    assert (await env.mirror())["external_registry_config"] == config


@pytest.mark.parametrize(
    ("config", "first_line"),
    [
        ({"verify_tls": "yes"}, "'yes' is not of type 'boolean'"),
        ({"proxy": {"http_proxy": 5}}, "5 is not of type 'string', 'null'"),
        ("none", "'none' is not of type 'object'"),
    ],
)
async def test_external_registry_config_schema(
    env: MirrorEnv, config: Any, first_line: str
) -> None:
    assert_schema_error(await env.post(mirror_body(external_registry_config=config)), first_line)


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"external_reference": "localhost/x", "architecture_filter": ["mips"]}, None),
        ({"architecture_filter": ["mips"], "sync_start_date": "x"}, "Invalid architectures: mips"),
        (
            {"sync_start_date": "x", "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": []}},
            BAD_DATE,
        ),
        (
            {"root_rule": {"rule_kind": "tag_glob_csv", "rule_value": []}, "robot_username": "x"},
            EMPTY_RULE,
        ),
    ],
    ids=["reference-first", "arch-before-date", "date-before-rule", "rule-before-robot"],
)
async def test_first_failing_step_wins(
    env: MirrorEnv, changes: dict[str, Any], text: str | None
) -> None:
    response = await env.post(mirror_body(**changes))
    assert_error(response, 400, text or "The provided registry location is not allowed")
