"""Run real server processes for integration tests: Moorage itself and CNCF distribution.

Both helpers bind only to 127.0.0.1, write their own config file into ``tmp_path``, wait (bounded)
until ``GET /v2/`` answers, and on exit stop exactly the process they started, by PID: SIGTERM,
then SIGKILL after a bounded wait. A free port is chosen by binding port 0; if the server exits
before answering (the port was taken in between), a new port is tried until the deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import yaml

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3
DOCKER_REGISTRY = "/usr/bin/docker-registry"
HTPASSWD = "/usr/bin/htpasswd"


@dataclass(frozen=True)
class ServerHandle:
    """A running server: base ``url``, ``host`` ("127.0.0.1:PORT"), ``pid`` and its log file."""

    url: str
    host: str
    port: int
    pid: int
    log_path: Path
    config_path: Path

    def log(self, tail: int = 8000) -> str:
        """The last ``tail`` characters of the server's combined stdout/stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _plain(value: Any) -> Any:
    """Config values YAML can dump: Paths become str, tuples become lists, recursively."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _answers(port: int, tls: bool) -> bool:
    """True once GET /v2/ gets any HTTP response (200, or 401 when authentication is on)."""
    connection: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(HOST, port, timeout=2, context=context)
    else:
        connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/v2/")
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process we started (by PID), then SIGKILL it after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout)


@contextlib.contextmanager
def _serve(
    name: str,
    command: Callable[[int], list[str]],
    prepare: Callable[[int], None],
    workdir: Path,
    log_path: Path,
    config_path: Path,
    env: Mapping[str, str],
    tls: bool = False,
) -> Iterator[ServerHandle]:
    deadline = time.monotonic() + START_TIMEOUT
    attempts = 0
    with log_path.open("ab") as log:
        # Retried only if the server exits early: the free port may be taken before it binds.
        while time.monotonic() < deadline and attempts < START_ATTEMPTS:
            attempts += 1
            port = free_port()
            prepare(port)
            process = subprocess.Popen(
                command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=dict(env),
                start_new_session=True,  # a Ctrl-C in pytest does not hit the server first
            )
            try:
                while process.poll() is None and time.monotonic() < deadline:
                    if _answers(port, tls):
                        scheme = "https" if tls else "http"
                        yield ServerHandle(
                            url=f"{scheme}://{HOST}:{port}",
                            host=f"{HOST}:{port}",
                            port=port,
                            pid=process.pid,
                            log_path=log_path,
                            config_path=config_path,
                        )
                        return
                    time.sleep(0.1)
            finally:
                stop_process(process)
    tail = log_path.read_text(errors="replace")[-4000:]
    raise RuntimeError(
        f"{name} did not answer GET /v2/ (waited up to {START_TIMEOUT}s, {attempts} start(s)); "
        f"log {log_path}:\n{tail}"
    )


def _clean_env(drop_prefixes: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}


@contextlib.contextmanager
def run_moorage(
    config: Mapping[str, Any], tmp_path: Path, args: Sequence[str] = ()
) -> Iterator[ServerHandle]:
    """Start ``moorage serve`` with ``config`` (a dict of config.yaml keys) on a free port.

    The config file is authoritative: ``MOORAGE_*`` environment variables (which would override
    it) are not passed on, except ``MOORAGE_TEST_*``. ``args`` are extra ``serve`` options,
    e.g. ``["--no-worker"]``.
    """
    run_id = uuid.uuid4().hex[:8]
    workdir = tmp_path / f"moorage-{run_id}"
    workdir.mkdir(parents=True)
    config_path = workdir / "config.yaml"
    log_path = workdir / "moorage.log"
    values = _plain(config)
    config_path.write_text(yaml.safe_dump(values, sort_keys=True))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MOORAGE_") or k.startswith("MOORAGE_TEST_")
    }
    env["PYTHONUNBUFFERED"] = "1"

    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "moorage",
            "serve",
            "--config",
            str(config_path),
            "--host",
            HOST,
            "--port",
            str(port),
            *args,
        ]

    with _serve("moorage", command, lambda _port: None, workdir, log_path, config_path, env) as h:
        yield h


@contextlib.contextmanager
def run_docker_registry(
    tmp_path: Path,
    *,
    htpasswd: tuple[str, str] | None = None,
    tls: tuple[str | Path, str | Path] | None = None,
) -> Iterator[ServerHandle]:
    """Start CNCF distribution (``docker-registry serve``) on a free 127.0.0.1 port.

    Filesystem storage lives in ``tmp_path``; deletes are enabled; the debug server is off.
    ``htpasswd=(user, password)`` turns on basic auth; ``tls=(cert, key)`` serves HTTPS.
    """
    if not Path(DOCKER_REGISTRY).exists():
        raise FileNotFoundError(f"{DOCKER_REGISTRY} is not installed")
    run_id = uuid.uuid4().hex[:8]
    workdir = tmp_path / f"docker-registry-{run_id}"
    (workdir / "storage").mkdir(parents=True)
    config_path = workdir / "config.yml"
    log_path = workdir / "registry.log"
    auth: dict[str, Any] = {}
    if htpasswd is not None:
        htpasswd_path = workdir / "htpasswd"
        htpasswd_path.write_bytes(_bcrypt_line(*htpasswd))
        auth = {"htpasswd": {"realm": "moorage-test-upstream", "path": str(htpasswd_path)}}

    def prepare(port: int) -> None:
        http_section: dict[str, Any] = {
            "addr": f"{HOST}:{port}",
            "secret": uuid.uuid4().hex,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if tls is not None:
            http_section["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        document: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(workdir / "storage")},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http_section,
        }
        if auth:
            document["auth"] = auth
        config_path.write_text(yaml.safe_dump(document, sort_keys=False))

    # REGISTRY_* variables would override the config file.
    env = _clean_env(("REGISTRY_",))
    with _serve(
        "docker-registry",
        lambda _port: [DOCKER_REGISTRY, "serve", str(config_path)],
        prepare,
        workdir,
        log_path,
        config_path,
        env,
        tls=tls is not None,
    ) as handle:
        yield handle


def _bcrypt_line(user: str, password: str) -> bytes:
    """One htpasswd line with a bcrypt hash (the only kind distribution accepts)."""
    if not shutil.which(HTPASSWD) and not Path(HTPASSWD).exists():
        raise FileNotFoundError(f"{HTPASSWD} is not installed (apache2-utils)")
    result = subprocess.run(
        [HTPASSWD, "-nbB", user, password],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return result.stdout.strip() + b"\n"
