"""The servers under test, each started fresh on 127.0.0.1 and stopped by PID.

``moorage`` and ``docker-registry`` come from ``tests.support.server``. Experiments
(``--experimental-server NAME``) run Moorage's app in another way, to measure a proposed
change without editing Moorage itself:

* ``granian``: the same ASGI app under granian (1 worker) instead of uvicorn;
* ``switch-1ms``: under uvicorn with ``moorage serve``'s settings, with
  ``sys.setswitchinterval(0.001)`` (GIL hand-over; bench/experiment_apps.py).

(The repository cache and the queue for SQLite writers began here as experiments and are now
part of Moorage.)
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import yaml
from tests.support import server as support
from tests.support.server import ServerHandle, run_docker_registry, run_moorage

REPO_ROOT = Path(__file__).resolve().parent.parent

ServerFactory = Callable[[Path], AbstractContextManager[ServerHandle]]


def moorage_config(data_dir: Path) -> dict[str, Any]:
    return {"INSECURE_OPEN_REGISTRY_NO_AUTH": True, "DATA_DIR": str(data_dir)}


@contextlib.contextmanager
def moorage(tmp_path: Path) -> Iterator[ServerHandle]:
    with run_moorage(moorage_config(tmp_path / "data"), tmp_path) as handle:
        yield handle


@contextlib.contextmanager
def docker_registry(tmp_path: Path) -> Iterator[ServerHandle]:
    with run_docker_registry(tmp_path) as handle:
        yield handle


def _granian_command(extra: list[str]) -> Callable[[Path], Callable[[int], list[str]]]:
    def bind(_config: Path) -> Callable[[int], list[str]]:
        def command(port: int) -> list[str]:
            return [
                sys.executable, "-m", "granian", "--interface", "asgi",
                "--host", support.HOST, "--port", str(port), "--workers", "1",
                "--log-level", "warning", "--no-ws", *extra,
                "--factory", "bench.experiment_apps:app",
            ]  # fmt: skip

        return command

    return bind


@contextlib.contextmanager
def _moorage_under(
    name: str, command_for: Callable[[Path], Callable[[int], list[str]]], tmp_path: Path
) -> Iterator[ServerHandle]:
    """Moorage's app (same config as ``moorage``) under another ASGI server."""
    workdir = tmp_path / f"{name}-{uuid.uuid4().hex[:8]}"
    workdir.mkdir(parents=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(moorage_config(tmp_path / "data")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update(
        MOORAGE_CONFIG=str(config_path),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    with support._serve(
        name,
        command_for(config_path),
        lambda _port: None,
        workdir,
        workdir / f"{name}.log",
        config_path,
        env,
    ) as handle:
        yield handle


def _uvicorn_command(factory: str) -> Callable[[Path], Callable[[int], list[str]]]:
    """uvicorn's CLI with the options ``moorage serve`` gives uvicorn.Config."""

    def bind(_config: Path) -> Callable[[int], list[str]]:
        def command(port: int) -> list[str]:
            return [
                sys.executable, "-m", "uvicorn", "--factory", factory,
                "--host", support.HOST, "--port", str(port), "--log-level", "info",
                "--no-access-log", "--proxy-headers", "--timeout-keep-alive", "30",
                "--h11-max-incomplete-event-size", str(1024 * 1024),
            ]  # fmt: skip

        return command

    return bind


def moorage_granian(tmp_path: Path) -> AbstractContextManager[ServerHandle]:
    return _moorage_under("moorage-granian", _granian_command([]), tmp_path)


def moorage_switch_interval(tmp_path: Path) -> AbstractContextManager[ServerHandle]:
    return _moorage_under(
        "moorage-switch-1ms",
        _uvicorn_command("bench.experiment_apps:switch_interval_app"),
        tmp_path,
    )


BASELINE = "docker-registry"
SERVERS: dict[str, ServerFactory] = {
    "moorage": moorage,
    BASELINE: docker_registry,
}
EXPERIMENTS: dict[str, ServerFactory] = {
    "granian": moorage_granian,
    "switch-1ms": moorage_switch_interval,
}
