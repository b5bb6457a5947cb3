"""Fixtures for browser tests of the web UI: Debian's Chromium driven by Playwright for Python.

One ``moorage serve`` (SQLite, filesystem, mirror worker inside) and one docker-registry
upstream filled with skopeo serve every test of a module. Playwright never downloads a browser:
it launches /usr/bin/chromium. Without Chromium, Playwright, skopeo or docker-registry the tests
are skipped with a message, except under CI=true, where they fail.

Every page records JavaScript errors, console errors and failed requests; a test ends with
``watch.assert_clean()``. Chromium reports each non-2xx fetch as a console error ("Failed to
load resource: ... status of 404"); those 4xx answers are the API's ordinary replies the UI
handles (a repository without a mirror, a validation error), so they are allowed, and so are
503s of the mirror health routes (their answer when mirrors are failing); other 5xx answers,
network failures and every other console error are not.

Set MOORAGE_UI_SCREENSHOTS=<dir> to save screenshots of each page there
(scripts/screenshots.py does that for docs/screenshots/).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Clients, _write_client_config, require_binary
from tests.integration.mirror_helpers import push_upstream
from tests.support.ocilayout import write_image, write_index
from tests.support.server import DOCKER_REGISTRY, ServerHandle, run_docker_registry, run_moorage

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER = "admin"
PASSWORD = "ui test password"
SLOW_LAYER = 6 * 1024 * 1024  # streamed through the slow proxy: a sync to cancel
ALLOWED_CONSOLE = re.compile(
    r"Failed to load resource: the server responded with a status of 4\d\d"
)


def missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (required under CI=true)")
    pytest.skip(message)


@dataclass
class Watch:
    """Everything that went wrong on a page: JS errors, console errors, failed requests."""

    problems: list[str] = field(default_factory=list)
    console_503: int = 0  # Chromium's console lines for 503 answers (they name no URL)
    health_503: int = 0  # 503s from the mirror health routes: "unhealthy" is an answer there

    def attach(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"JS error: {error}"))
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def _console(self, message: Any) -> None:
        if message.type != "error" or ALLOWED_CONSOLE.search(message.text):
            return
        if "status of 503" in message.text:
            self.console_503 += 1
        else:
            self.problems.append(f"console error: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status == 503 and "/mirror/health" in response.url:
            self.health_503 += 1
        elif response.status >= 500:
            self.problems.append(f"HTTP {response.status} from {response.url}")

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" not in failure:  # navigation cancels in-flight polls: harmless
            self.problems.append(f"request failed: {request.url} {failure}")

    def assert_clean(self) -> None:
        problems = list(self.problems)
        if self.console_503 > self.health_503:
            problems.append(f"{self.console_503 - self.health_503} unexpected 503 answers")
        assert not problems, "\n".join(problems)


@dataclass(frozen=True)
class UiEnv:
    moorage: ServerHandle
    upstream: ServerHandle
    clients: Clients
    tmp: Path


@pytest.fixture(scope="module")
def playwright_browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} is not installed (apt-get install chromium): web UI tests skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[test]'): web UI tests skipped")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def create_user(config_path: Path) -> None:
    subprocess.run(
        [
            *(sys.executable, "-m", "moorage", "admin", "create-user", USER, "--superuser"),
            *("--password", PASSWORD, "--config", str(config_path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def fill_upstream(clients: Clients, upstream: ServerHandle, layout: Path) -> None:
    rng = random.Random(20261127)
    write_image(layout, "1.0", layer_sizes=(40_000, 60_000), rng=rng)
    write_image(layout, "1.1", layer_sizes=(50_000,), architecture="arm64", rng=rng)
    write_index(layout, "multi", layer_sizes=(30_000,), rng=rng)
    write_image(layout, "skipped", layer_sizes=(1_000,), rng=rng)
    write_image(layout, "big", layer_sizes=(SLOW_LAYER,), rng=rng, compresslevel=0)
    for ref in ("1.0", "1.1", "skipped"):
        push_upstream(clients, upstream, layout, ref, "library/app")
    push_upstream(clients, upstream, layout, "multi", "library/app", all_images=True)
    push_upstream(clients, upstream, layout, "big", "library/big")


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiEnv]:
    require_binary("skopeo")
    if not Path(DOCKER_REGISTRY).exists():
        missing(f"{DOCKER_REGISTRY} is not installed (Debian package docker-registry)")
    tmp = tmp_path_factory.mktemp("ui")
    run_root = Path(tempfile.mkdtemp(prefix="mrg-ui-", dir="/tmp"))
    try:
        clients = _write_client_config(tmp / "clients", run_root)
        config = {
            "DATA_DIR": tmp / "data",
            "INSECURE_OPEN_REGISTRY_NO_AUTH": False,
            "SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"],
            "REPO_MIRROR_INTERVAL": 1,
            # The worker publishes live progress at each lease renewal (a third of this).
            "REPO_MIRROR_LEASE_SECONDS": 10,
        }
        with run_docker_registry(tmp) as upstream, run_moorage(config, tmp / "moorage") as moorage:
            try:
                create_user(moorage.config_path)
                fill_upstream(clients, upstream, tmp / "layout")
                yield UiEnv(moorage, upstream, clients, tmp)
            finally:
                print(f"--- moorage log ---\n{moorage.log()}")
    finally:
        shutil.rmtree(run_root, ignore_errors=True)


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(playwright_browser: Any, ui_env: UiEnv, watch: Watch) -> Iterator[Any]:
    context = playwright_browser.new_context(
        viewport={"width": 1280, "height": 860},
        locale="en-US",
        timezone_id="UTC",
        base_url=ui_env.moorage.url,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    watch.attach(page)
    try:
        yield page
    finally:
        context.close()


def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    """Save docs screenshots when MOORAGE_UI_SCREENSHOTS names a directory."""
    target = os.environ.get("MOORAGE_UI_SCREENSHOTS")
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    page.evaluate("document.getElementById('toast').className = 'toast'")  # hide toasts
    page.wait_for_timeout(300)  # let transitions settle
    page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=full_page)
