"""The seed document's curl commands ("Using the API to mirror a repository") against a real
`moorage serve`, with the real `curl` binary, on SQLite.

What the document says happens, and what Moorage answers:
- POST creates the mirror configuration (201, no output). The document's ``root_rule``
  ``{rule, rule_type}`` is wrong in Quay itself: that body is a 400; ``{rule_kind, rule_value}``
  is what works. Its example source ``https://quay.io/repository/...`` carries a scheme, which
  the SSRF validation refuses.
- GET returns the configuration, shaped as the document's example output.
- sync-now and sync-cancel print nothing (204; the document says 201). The document's cancel
  command, as printed, has no Authorization header: 401.
- PUT with ``is_enabled: false`` disables automatic synchronization (201, no output).

All traffic stays on 127.0.0.1: the mirror source is a 127.0.0.1 port nobody listens on (allowed
by SSRF_ALLOWED_HOSTS), the start date is far in the future, and the worker is off so the
statuses the document talks about are observed without a race.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerHandle, free_port, run_moorage

USER = "quayadmin"
ROBOT = f"{USER}+mirror_robot"
REPO = "argocd"
SECRET = "s3cr3t-mirror-pass"
START = "2099-01-15T12:00:00Z"


def clean_env() -> dict[str, str]:
    """No MOORAGE_* overrides, no proxies: curl talks to 127.0.0.1 directly."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MOORAGE_") and "proxy" not in k.lower()
    }


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run the real curl binary exactly as the document does (plus: never through a proxy)."""
    return subprocess.run(
        ["curl", "--noproxy", "*", "--max-time", "30", *args],
        capture_output=True,
        timeout=60,
        check=True,
        env=clean_env(),
    )


def curl_status(*args: str) -> tuple[int, bytes]:
    """The same command, also printing the HTTP status on a last line."""
    out = curl("-sS", "-w", "\n%{http_code}", *args).stdout
    body, _, code = out.rpartition(b"\n")
    return int(code), body


def create_user(config_path: Path) -> str:
    command = ["moorage", "admin", "create-user", USER, "--superuser", "--generate-password"]
    result = subprocess.run(
        [sys.executable, "-m", *command, "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert lines["password"]
    return lines["access token (shown once)"].strip()


def seed_body(source: str, root_rule: dict[str, Any], **changes: Any) -> str:
    """The document's POST/PUT body, placeholders filled in."""
    body = {
        "is_enabled": True,
        "external_reference": source,
        "external_registry_username": "mirroruser",
        "external_registry_password": SECRET,
        "sync_start_date": START,
        "sync_interval": 86400,
        "robot_username": ROBOT,
        "root_rule": root_rule,
        **changes,
    }
    return json.dumps(body)


@pytest.mark.parametrize("backend", ["sqlite-fs"])
def test_seed_document_curl_commands(tmp_path: Path, backend: str) -> None:
    config = {
        "DATA_DIR": tmp_path / "data",
        "INSECURE_OPEN_REGISTRY_NO_AUTH": False,
        "FEATURE_REPO_MIRROR": True,
        "REPO_MIRROR_WORKER": False,
        "SSRF_ALLOWED_HOSTS": ["127.0.0.1"],
    }
    with run_moorage(config, tmp_path) as server:
        run_document(server)
        assert SECRET not in server.log(tail=10**7)


def run_document(server: ServerHandle) -> None:
    token = create_user(server.config_path)
    auth = f"Authorization: Bearer {token}"
    json_type = "Content-Type: application/json"
    api = f"{server.url}/api/v1"
    mirror = f"{api}/repository/{USER}/{REPO}/mirror"

    # Prerequisites through the API: the robot and the repository to mirror into.
    status, _ = curl_status("-X", "PUT", f"{api}/user/robots/mirror_robot", "-H", auth)
    assert status == 201
    repo = json.dumps({"namespace": USER, "repository": REPO, "visibility": "private"})
    status, body = curl_status(
        "-X", "POST", f"{api}/repository", "-H", auth, "-H", json_type, "-d", repo
    )
    assert status == 201, body

    source = f"127.0.0.1:{free_port()}/argoproj/argocd"
    wrong_rule = {"rule": "*.latest*", "rule_type": "TAG_GLOB_CSV"}
    rule = {"rule_kind": "tag_glob_csv", "rule_value": ["*.latest*"]}

    # 1. POST exactly as documented: the {rule, rule_type} shape is refused, as by Quay.
    status, body = curl_status(
        "-X", "POST", mirror, "-H", auth, "-H", json_type, "-d", seed_body(source, wrong_rule)
    )
    assert status == 400
    assert json.loads(body)["detail"].startswith("'rule_kind' is a required property")
    # The document's example source carries a scheme: refused too.
    example = "https://quay.io/repository/argoproj/argocd"
    status, body = curl_status(
        "-X", "POST", mirror, "-H", auth, "-H", json_type, "-d", seed_body(example, rule)
    )
    assert status == 400
    assert json.loads(body)["detail"] == (
        "External registry reference must not include a URL scheme"
    )
    # The shape Quay really accepts: 201, nothing printed.
    result = curl("-X", "POST", mirror, "-H", auth, "-H", json_type, "-d", seed_body(source, rule))
    assert result.stdout == b""
    status, _ = curl_status(
        "-X", "POST", mirror, "-H", auth, "-H", json_type, "-d", seed_body(source, rule)
    )
    assert status == 409  # the first call created it

    # 2. GET: the document's example output, with our values.
    got = get_mirror(mirror, auth)
    expected = {
        "is_enabled": True,
        "mirror_type": "PULL",
        "external_reference": source,
        "external_registry_username": "mirroruser",
        "external_registry_config": {},
        "sync_interval": 86400,
        "sync_start_date": START,
        "sync_expiration_date": None,
        "sync_retries_remaining": 3,
        "sync_status": "NEVER_RUN",
        "root_rule": rule,
        "robot_username": ROBOT,
    }
    assert {k: got[k] for k in expected} == expected
    assert got["skopeo_timeout_interval"] == 300  # omitted by the document: default
    assert "external_registry_password" not in got

    # 3. sync-now: "This command does not return output in the CLI."
    result = curl("-X", "POST", f"{mirror}/sync-now", "-H", auth)
    assert result.stdout == b""
    got = get_mirror(mirror, auth)
    assert (got["sync_status"], got["sync_retries_remaining"]) == ("SYNC_NOW", 3)
    assert curl_status("-X", "POST", f"{mirror}/sync-now", "-H", auth) == (204, b"")

    # 4. sync-cancel as printed in the document (no Authorization header): 401.
    status, body = curl_status("-X", "POST", f"{mirror}/sync-cancel")
    assert status == 401
    assert json.loads(body)["detail"] == "Requires authentication"
    result = curl("-X", "POST", f"{mirror}/sync-cancel", "-H", auth)
    assert result.stdout == b""
    got = get_mirror(mirror, auth)
    assert (got["sync_status"], got["sync_retries_remaining"]) == ("CANCEL", 0)
    status, _ = curl_status("-X", "POST", f"{mirror}/sync-cancel", "-H", auth)
    assert status == 404  # nothing left to cancel

    # 5. PUT to disable automatic synchronization; the documented rule shape is refused again.
    disable = seed_body(source, wrong_rule, is_enabled=False)
    status, body = curl_status("-X", "PUT", mirror, "-H", auth, "-H", json_type, "-d", disable)
    assert status == 400
    assert json.loads(body)["detail"].startswith("'rule_kind' is a required property")
    assert get_mirror(mirror, auth)["is_enabled"] is True
    disable = seed_body(source, rule, is_enabled=False)
    assert curl("-X", "PUT", mirror, "-H", auth, "-H", json_type, "-d", disable).stdout == b""
    status, _ = curl_status("-X", "PUT", mirror, "-H", auth, "-H", json_type, "-d", disable)
    assert status == 201
    got = get_mirror(mirror, auth)
    assert {k: got[k] for k in expected if k != "is_enabled"} == {
        **{k: v for k, v in expected.items() if k != "is_enabled"},
        "sync_status": "CANCEL",
        "sync_retries_remaining": 0,
    }
    assert got["is_enabled"] is False

    # The repository is a mirror now (POST switched it).
    status, body = curl_status(f"{api}/repository/{USER}/{REPO}", "-H", auth)
    assert status == 200
    assert json.loads(body)["state"] == "MIRROR"


def get_mirror(url: str, auth: str) -> dict[str, Any]:
    status, body = curl_status("-X", "GET", url, "-H", auth)
    assert status == 200, body
    assert SECRET.encode() not in body
    value: dict[str, Any] = json.loads(body)
    return value
