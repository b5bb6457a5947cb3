"""GET /api/v1/repository/{ns}/{repo}/mirror: Quay's body, round trips, date format."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.api.mirror.conftest import LOCAL_HOSTS, LOCAL_SOURCE, NS, MirrorEnv, assert_error

pytestmark = pytest.mark.anyio

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
QUAY_KEYS = {
    "is_enabled",
    "mirror_type",
    "external_reference",
    "external_registry_username",
    "external_registry_config",
    "sync_interval",
    "sync_start_date",
    "sync_expiration_date",
    "sync_retries_remaining",
    "sync_status",
    "root_rule",
    "robot_username",
    "skopeo_timeout_interval",
    "architecture_filter",
}
QUAY_CONFIG = {
    "verify_tls": True,
    "unsigned_images": False,
    "proxy": {
        "http_proxy": "http://insecure.proxy.corp",
        "https_proxy": "https://secure.proxy.corp",
        "no_proxy": "mylocalhost",
    },
}


async def test_get_without_mirror_is_404(env: MirrorEnv) -> None:
    assert_error(await env.get(), 404, "Not Found")
    response = await env.http.get(f"/api/v1/repository/{NS}/nosuchrepo/mirror", headers=env.auth())
    assert_error(response, 404, "Not Found")


@pytest.mark.parametrize("config_overrides", [LOCAL_HOSTS])
async def test_get_has_every_quay_key_and_never_the_password(env: MirrorEnv) -> None:
    await env.create_mirror(
        external_reference=LOCAL_SOURCE,
        external_registry_username="fakeUsername",
        external_registry_password="fakePassword",
        external_registry_config=QUAY_CONFIG,
        sync_start_date="2020-01-02T06:30:00Z",
        is_enabled=False,
    )
    response = await env.get()
    body = response.json()
    assert set(body) >= QUAY_KEYS
    assert set(body) - QUAY_KEYS == {"last_sync", "current_sync", "last_error"}  # extensions
    assert "external_registry_password" not in body
    assert "fakePassword" not in response.text
    assert body["external_registry_username"] == "fakeUsername"
    assert body["external_registry_config"] == QUAY_CONFIG
    assert body["sync_start_date"] == "2020-01-02T06:30:00Z"


async def test_credentials_encrypted_and_never_returned(env: MirrorEnv) -> None:
    await env.create_mirror(
        external_registry_username="fakeUsername", external_registry_password="s3cr3t-Passw0rd"
    )
    response = await env.get()
    assert response.json()["external_registry_username"] == "fakeUsername"
    assert "external_registry_password" not in response.json()
    assert "s3cr3t-Passw0rd" not in response.text
    row = await env.config_row()
    assert row is not None
    assert row.external_registry_username is not None
    assert row.external_registry_password is not None
    assert row.external_registry_username.startswith("v0$$")
    assert row.external_registry_password.startswith("v0$$")
    assert "s3cr3t-Passw0rd" not in row.external_registry_password


async def test_empty_credentials_stored_as_null(env: MirrorEnv) -> None:
    await env.create_mirror(external_registry_username="", external_registry_password="")
    row = await env.config_row()
    assert row is not None
    assert (row.external_registry_username, row.external_registry_password) == (None, None)
    assert (await env.mirror())["external_registry_username"] is None


async def test_dates_have_no_microseconds(env: MirrorEnv) -> None:
    await env.create_mirror()
    row = await env.config_row()
    assert row is not None
    # Values computed by a worker carry microseconds; GET must still print whole seconds.
    async with env.db.transaction() as session:
        stored = await session.get(type(row), row.id)
        assert stored is not None
        stored.sync_start_date = dt.datetime(2099, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
        stored.sync_expiration_date = dt.datetime(2099, 3, 4, 17, 6, 7, 5, tzinfo=dt.UTC)
    body = await env.mirror()
    assert body["sync_start_date"] == "2099-03-04T05:06:07Z"
    assert body["sync_expiration_date"] == "2099-03-04T17:06:07Z"
    assert DATE_RE.match(body["sync_start_date"])


async def test_round_trip_get_put_get(env: MirrorEnv) -> None:
    await env.create_mirror(
        external_registry_username="fakeUsername",
        external_registry_password="fakePassword",
        external_registry_config=QUAY_CONFIG,
        architecture_filter=["amd64", "arm64"],
    )
    row = await env.config_row()
    assert row is not None
    password = row.external_registry_password
    first = await env.mirror()
    response = await env.put(first)
    assert response.status_code == 201, response.text
    assert await env.mirror() == first
    row = await env.config_row()
    assert row is not None
    assert row.external_registry_password == password


async def test_round_trip_with_worker_dates(env: MirrorEnv) -> None:
    """Quay bug B8: GET printed microseconds, so the body could not be sent back."""
    await env.create_mirror()
    row = await env.config_row()
    assert row is not None
    async with env.db.transaction() as session:
        stored = await session.get(type(row), row.id)
        assert stored is not None
        stored.sync_start_date = dt.datetime(2099, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
    first = await env.mirror()
    assert (await env.put(first)).status_code == 201
    assert await env.mirror() == first


async def test_round_trip_minimal_mirror(env: MirrorEnv) -> None:
    await env.create_mirror()
    first = await env.mirror()
    assert (await env.put(first)).status_code == 201
    assert await env.mirror() == first
