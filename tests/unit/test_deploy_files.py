"""What can be checked offline about deploy/ and the Containerfile (no base image can be
pulled here, so the image itself is never built in these tests):

- the systemd units pass `systemd-analyze verify` (skipped without systemd-analyze), with the
  binary path pointed at this checkout's ``moorage``;
- every ExecStart and the image's ENTRYPOINT + CMD are real `moorage` commands with real options;
- deploy/config.example.yaml, with the variables of moorage.env.example, loads with the
  project's Settings loader and builds a database engine and an S3 driver;
- the Containerfile: two python:3.11-slim stages, COPY sources that exist, a non-root user, and
  a health check that hits a real route and exits 0 on 200 and 1 on 503.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from moorage.__main__ import main
from moorage.api.health import routes as health_routes
from moorage.config import Settings, load_settings
from moorage.db.engine import Database
from moorage.storage.factory import build_driver

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
ENV_EXAMPLE = DEPLOY / "systemd" / "moorage.env.example"
CONFIG_EXAMPLE = DEPLOY / "config.example.yaml"
CONTAINERFILE = ROOT / "Containerfile"
INSTALLED = "/opt/moorage/bin/moorage"
VENV_MOORAGE = Path(sys.executable).parent / "moorage"
TEMPLATE_PORT = "8081"


def unit_values(path: Path, key: str) -> list[str]:
    return [
        line.split("=", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile= reads them (comments skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def test_the_expected_units_exist() -> None:
    assert [u.name for u in UNITS] == [
        "moorage-api.service",
        "moorage-api@.service",
        "moorage-worker.service",
    ]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_commands_are_real_moorage_commands(unit: Path) -> None:
    (exec_start,) = unit_values(unit, "ExecStart")
    argv = shlex.split(exec_start.replace("%i", TEMPLATE_PORT))
    assert argv[0] == INSTALLED
    # Options are parsed before --help is acted on: an unknown option would fail here.
    result = CliRunner().invoke(main, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert unit_values(unit, "EnvironmentFile") == ["/etc/moorage/moorage.env"]
    assert unit_values(unit, "User") == ["moorage"]
    if unit.name.startswith("moorage-api"):
        assert argv[1:2] == ["serve"]
        assert "--no-worker" in argv  # syncs run in moorage-worker.service
    else:
        assert argv[1:2] == ["worker"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    assert VENV_MOORAGE.exists()
    names = []
    for unit in UNITS:
        text = unit.read_text().replace(INSTALLED, str(VENV_MOORAGE))
        text = text.replace("/etc/moorage/moorage.env", str(ENV_EXAMPLE))
        (tmp_path / unit.name).write_text(text)
        names.append(unit.name.replace("@.", f"@{TEMPLATE_PORT}."))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    ours = [line for line in result.stderr.splitlines() if "moorage" in line]
    assert result.returncode == 0, result.stderr
    assert ours == [], "\n".join(ours)


def test_env_example_sets_only_known_keys() -> None:
    values = env_file(ENV_EXAMPLE)
    for key in values:
        if key.startswith("MOORAGE_"):
            assert key == "MOORAGE_CONFIG" or key.removeprefix("MOORAGE_") in Settings.model_fields
        else:
            assert key in {"PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, key
    assert values["MOORAGE_CONFIG"] == "/etc/moorage/config.yaml"
    assert {"MOORAGE_DATABASE_SECRET_KEY", "MOORAGE_SECRET_KEY"} <= values.keys()


def test_config_example_loads_with_the_env_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in [k for k in os.environ if k.startswith("MOORAGE_")]:
        monkeypatch.delenv(key)
    for key, value in env_file(ENV_EXAMPLE).items():
        monkeypatch.setenv(key, value)
    settings = load_settings(CONFIG_EXAMPLE)
    # Secrets came from the environment: nothing was generated into DATA_DIR.
    assert settings.DATABASE_SECRET_KEY is not None
    assert settings.SECRET_KEY is not None
    assert not (settings.DATA_DIR / "secrets.yaml").exists()
    assert settings.database_url.startswith("postgresql://")
    assert "CHANGE-ME" not in settings.database_url  # the password stays in PGPASSWORD
    assert settings.storage_entry[0] == "S3Storage"
    assert settings.WORKER_METRICS_PORT is not None
    # The URL and the storage parameters are accepted by the real constructors (no I/O).
    db = Database(settings.database_url)
    assert db.dialect == "postgresql"
    driver = build_driver(settings)
    assert driver.name == "S3Storage"


# --- Containerfile --------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in CONTAINERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line.strip())
        pending = ""
    assert not pending
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def test_containerfile_stages_and_user() -> None:
    steps = instructions()
    defaults = dict(a.split("=", 1) for k, a in steps if k == "ARG")
    bases = [
        a.split()[0].replace("${PYTHON_IMAGE}", defaults["PYTHON_IMAGE"])
        for k, a in steps
        if k == "FROM"
    ]
    assert len(bases) >= 2  # multi-stage
    assert all(b.endswith("python:3.11-slim") for b in bases), bases
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    users = [a for k, a in final if k == "USER"]
    assert users, "the runtime stage must not run as root"
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert [a for k, a in final if k == "EXPOSE"] == ["8080"]


def test_containerfile_copies_files_that_exist() -> None:
    for kind, arguments in instructions():
        if kind != "COPY" or arguments.startswith("--from"):
            continue
        *sources, _destination = arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    # pyproject's readme is among them: `pip install .` needs it.
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"] == "README.md"


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list)
    return [str(v) for v in value]


def test_containerfile_entrypoint_and_cmd_are_real_commands() -> None:
    steps = dict(instructions())
    entrypoint, cmd = _exec_form(steps["ENTRYPOINT"]), _exec_form(steps["CMD"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["moorage"]
    assert scripts["moorage"] == "moorage.__main__:main"
    result = CliRunner().invoke(main, [*cmd, "--help"])
    assert result.exit_code == 0, result.output
    assert cmd[cmd.index("--port") + 1] == "8080"
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"  # noqa: S104  (inside a container)


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        type(self).seen = self.path  # type: ignore[attr-defined]
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_containerfile_healthcheck(health_server: http.server.HTTPServer) -> None:
    arguments = dict(instructions())["HEALTHCHECK"]
    command = _exec_form(arguments[arguments.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    code = command[2]
    compile(code, "HEALTHCHECK", "exec")
    default = re.search(r"'(http://127\.0\.0\.1:(\d+)(/[^']*))'", code)
    assert default is not None
    assert default.group(2) == "8080"
    assert default.group(3) in {route.path for route in health_routes()}  # type: ignore[attr-defined]

    port = health_server.server_address[1]
    env = {"HEALTHCHECK_URL": f"http://127.0.0.1:{port}/health/instance", "PATH": "/usr/bin"}
    for status, exit_code in ((200, 0), (503, 1)):
        _Health.status = status
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=30, check=False
        )
        assert run.returncode == exit_code, run.stderr
    assert _Health.seen == "/health/instance"  # type: ignore[attr-defined]
