"""Real clients against an authenticating Moorage: podman login as user, robot, $oauthtoken."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Clients, require_binary
from tests.support import ocilayout
from tests.support.server import ServerHandle, run_moorage

pytestmark = pytest.mark.integration
NO_TLS = "--tls-verify=false"
PASSWORD = "podman test password"


@pytest.fixture
def secure(base_config: dict[str, Any], backend: str, tmp_path: Path) -> Iterator[ServerHandle]:
    if backend == "postgres-s3":
        import asyncio

        from tests.integration.conftest import _truncate_postgres

        asyncio.run(_truncate_postgres(str(base_config["DB_URI"])))
    config = {**base_config, "INSECURE_OPEN_REGISTRY_NO_AUTH": False, "REPO_MIRROR_WORKER": False}
    with run_moorage(config, tmp_path / "moorage") as handle:
        try:
            yield handle
        finally:
            print(f"--- moorage log ---\n{handle.log()}")


def create_user(server: ServerHandle, name: str) -> str:
    """`moorage admin create-user` against the server's config; returns the printed token."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "moorage",
            "admin",
            "create-user",
            name,
            "--password",
            PASSWORD,
            "--config",
            str(server.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    match = re.search(r"access token \(shown once\): (\S+)", result.stdout)
    assert match, result.stdout + result.stderr
    return match.group(1)


def api(server: ServerHandle, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.url}/api/v1{path}",
        auth=(user, PASSWORD),
        timeout=30,
        trust_env=False,
        **kwargs,
    )


def login(clients: Clients, server: ServerHandle, user: str, secret: str) -> None:
    clients.podman("login", NO_TLS, "-u", user, "-p", secret, server.host)


def push(
    clients: Clients, image: str, target: str, *, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    return clients.podman(
        "push",
        "--signature-policy",
        str(clients.policy),
        NO_TLS,
        image,
        f"docker://{target}",
        check=check,
    )


def test_podman_login_push_pull_as_user_robot_and_token(
    secure: ServerHandle, clients: Clients, tmp_path: Path
) -> None:
    require_binary("podman")
    token = create_user(secure, "alice")
    create_user(secure, "bob")
    layout = tmp_path / "layout"
    ocilayout.write_image(layout, "v1", layer_sizes=(4096, 8192), rng=random.Random(3))
    policy = ("--signature-policy", str(clients.policy))
    image_id = clients.podman("pull", *policy, "-q", f"oci:{layout}:v1").stdout.decode().strip()

    # A user: login, push to their namespace (creates a private repository), pull back.
    login(clients, secure, "alice", PASSWORD)
    push(clients, image_id, f"{secure.host}/alice/app:v1")
    clients.podman("pull", *policy, NO_TLS, f"{secure.host}/alice/app:v1", store="alice")

    # Another user cannot push into alice's namespace.
    login(clients, secure, "bob", PASSWORD)
    assert push(clients, image_id, f"{secure.host}/alice/app:bob", check=False).returncode != 0

    # A robot: needs a permission, and stays inside its own namespace.
    robot = api(secure, "alice", "PUT", "/user/robots/builder", json={"description": "ci"})
    assert robot.status_code == 201, robot.text
    robot_token = robot.json()["token"]
    granted = api(
        secure,
        "alice",
        "PUT",
        "/repository/alice/app/permissions/user/alice+builder",
        json={"role": "write"},
    )
    assert granted.status_code == 200, granted.text
    login(clients, secure, "alice+builder", robot_token)
    push(clients, image_id, f"{secure.host}/alice/app:v2")
    assert push(clients, image_id, f"{secure.host}/bob/app:v1", check=False).returncode != 0

    # $oauthtoken with the access token printed by create-user.
    login(clients, secure, "$oauthtoken", token)
    push(clients, image_id, f"{secure.host}/alice/other:v1")
    clients.podman("pull", *policy, NO_TLS, f"{secure.host}/alice/other:v1", store="token")

    # A private repository cannot be pulled anonymously.
    clients.podman("logout", "--all")
    anonymous = clients.podman(
        "pull", *policy, NO_TLS, f"{secure.host}/alice/app:v1", store="anon", check=False
    )
    assert anonymous.returncode != 0

    # A READ_ONLY repository refuses pushes, even from its owner.
    state = api(
        secure, "alice", "PUT", "/repository/alice/app/changestate", json={"state": "READ_ONLY"}
    )
    assert state.status_code == 200, state.text
    login(clients, secure, "alice", PASSWORD)
    refused = push(clients, image_id, f"{secure.host}/alice/app:v3", check=False)
    assert refused.returncode != 0
    clients.podman("pull", *policy, NO_TLS, f"{secure.host}/alice/app:v1", store="ro")

    # No secret ever reached the server's log.
    log = secure.log(tail=2_000_000)
    for secret in (PASSWORD, token, robot_token):
        assert secret not in log
