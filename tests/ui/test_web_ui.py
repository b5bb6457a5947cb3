"""The web UI in a real browser: sign in, create a repository, configure a mirror against a real
docker-registry, sync, cancel a slow sync, validation errors next to their fields, and the
robots, usage-log and registry-health pages. No JavaScript or console errors anywhere."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.faultproxy import run_fault_proxy
from tests.support.webhook import run_receiver
from tests.ui.conftest import PASSWORD, SLOW_LAYER, USER, UiEnv, Watch, screenshot

pytestmark = pytest.mark.integration
SYNC_TIMEOUT = 90_000
SLOW_RATE = 192 * 1024  # bytes/s: the large layer needs ~30 s, the cancel lands within it


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def api(env: UiEnv, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The API as a script would use it (Basic credentials), to prepare state quickly."""
    return httpx.request(
        method,
        f"{env.moorage.url}/api/v1{path}",
        auth=(USER, PASSWORD),
        timeout=30,
        trust_env=False,
        **kwargs,
    )


def sign_in(page: Any, path: str = "/") -> None:
    page.goto(path)
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account")).to_contain_text(USER)


def field_error(page: Any, name: str) -> Any:
    return page.locator(f'[data-field="{name}"] .field-error')


def unlabelled_controls(page: Any) -> list[str]:
    """Visible form controls without an accessible name (label, aria-label)."""
    result: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('main input, main select, main textarea')]
            .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map((el) => el.name || el.outerHTML)"""
    )
    return result


def test_mirror_a_repository_from_the_browser(page: Any, ui_env: UiEnv, watch: Watch) -> None:
    page.goto("/")
    expect(page).to_have_url(f"{ui_env.moorage.url}/ui/signin?next=%2F")
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".form-error")).to_have_text("Invalid username or password")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot(page, "signin")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Repositories")).to_be_visible()

    # Create a repository.
    page.locator("summary", has_text="Create repository").click()
    page.get_by_label("Name", exact=True).fill("mirrored")
    page.get_by_label("Description").fill("Mirror of library/app")
    page.get_by_role("button", name="Create repository").click()
    expect(page).to_have_url(f"{ui_env.moorage.url}/ui/repository/{USER}/mirrored")
    expect(page.locator(".repo-state")).to_have_text("NORMAL")
    expect(page.get_by_text("No tags yet")).to_be_visible()

    # Configure the mirror; first with mistakes the API reports next to the right field.
    page.get_by_role("link", name="Mirroring").click()
    form = page.locator("form.mirror-form")
    expect(form).to_be_visible()
    assert unlabelled_controls(page) == []
    page.get_by_label("Registry location").fill(f"http://{ui_env.upstream.host}/library/app")
    page.get_by_label("Tags").fill("1.*, multi")
    page.get_by_label("Verify TLS").uncheck()
    page.get_by_label("New robot short name").fill("mirror_bot")
    page.get_by_role("button", name="Create robot").click()
    expect(page.get_by_label("Robot account")).to_have_value(f"{USER}+mirror_bot")
    page.get_by_label("Sync interval").fill("0")
    page.get_by_role("button", name="Create mirror").click()
    expect(field_error(page, "sync_interval")).to_have_text("0 is less than the minimum of 1")
    expect(page.get_by_label("Sync interval")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Sync interval").fill("6")
    page.get_by_label("Interval unit").select_option(label="hours")
    page.get_by_role("button", name="Create mirror").click()
    expect(field_error(page, "external_reference")).to_contain_text("must not include a URL scheme")
    expect(field_error(page, "sync_interval")).to_have_count(0)
    page.get_by_label("Registry location").scroll_into_view_if_needed()
    screenshot(page, "mirror-validation")

    page.get_by_label("Registry location").fill(f"{ui_env.upstream.host}/library/app")
    page.get_by_role("button", name="Create mirror").click()
    status = page.locator(".sync-status")
    expect(status).to_have_attribute("data-status", "NEVER_RUN")
    expect(page.locator(".repo-state")).to_have_text("MIRROR")

    # Sync now, twice (the second run copies nothing new), and watch it finish.
    page.get_by_role("button", name="Sync now").click()
    expect(status).to_have_attribute("data-status", "SUCCESS", timeout=SYNC_TIMEOUT)
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(2, timeout=SYNC_TIMEOUT)
    expect(status).to_have_attribute("data-status", "SUCCESS", timeout=SYNC_TIMEOUT)
    expect(page.locator("table.runs tbody tr").first).to_contain_text("succeeded")
    expect(page.locator("svg.chart rect.bar")).to_have_count(2)
    expect(page.locator(".status-card")).to_contain_text("3 matched")
    screenshot(page, "mirror", full_page=True)

    # Saving with a change sends a PUT; the password field is never prefilled.
    expect(page.get_by_label("Upstream password")).to_have_value("")
    page.get_by_label("Sync interval").fill("0")
    page.get_by_role("button", name="Save changes").click()
    expect(field_error(page, "sync_interval")).to_have_text("0 is less than the minimum of 1")
    page.get_by_label("Sync interval").fill("12")
    before = api(ui_env, "GET", f"/repository/{USER}/mirrored/mirror").json()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#toast")).to_have_text("Mirror configuration saved.")
    expect(field_error(page, "sync_interval")).to_have_count(0)
    mirror = api(ui_env, "GET", f"/repository/{USER}/mirrored/mirror").json()
    assert mirror["sync_interval"] == 12 * 3600
    # Only what changed is sent: the schedule the worker advanced is not reset by the form.
    assert mirror["sync_start_date"] == before["sync_start_date"]
    assert mirror["external_registry_config"]["verify_tls"] is False

    # The mirrored tags, with architectures and a pull command.
    page.get_by_role("link", name="Tags").click()
    rows = page.locator("table[aria-label='Tags'] tbody tr")
    expect(rows).to_have_count(3)
    table = page.locator("table[aria-label='Tags']")
    for tag in ("1.0", "1.1", "multi"):
        expect(table.get_by_role("rowheader", name=tag, exact=False).first).to_be_visible()
    expect(table).not_to_contain_text("skipped")
    expect(rows.filter(has_text="1.1").locator(".chip")).to_have_text(["arm64"])
    expect(rows.filter(has_text="multi").locator(".chip:not(.chip-muted)")).to_have_text(
        ["amd64", "arm64/v8"]
    )
    pull = page.get_by_label("Pull command for 1.0")
    expect(pull).to_have_value(f"podman pull {ui_env.moorage.host}/{USER}/mirrored:1.0")
    screenshot(page, "repository-tags")

    page.get_by_role("link", name="Repositories").click()
    page.get_by_label("Name contains").fill("mirr")
    expect(page.locator("table tbody tr")).to_have_count(1)
    expect(page.locator("table tbody tr")).to_contain_text("MIRROR")
    screenshot(page, "repositories")
    watch.assert_clean()


def test_cancel_a_slow_sync(page: Any, ui_env: UiEnv, watch: Watch) -> None:
    with run_fault_proxy(ui_env.upstream.port, rate=SLOW_RATE) as proxy:
        created = api(ui_env, "POST", "/repository", json={"repository": "slow"})
        assert created.status_code == 201, created.text
        robot = api(ui_env, "PUT", "/user/robots/slow_bot", json={})
        assert robot.status_code == 201, robot.text
        body = {
            "external_reference": f"{proxy.host}/library/big",
            "sync_interval": 86400,
            "sync_start_date": "2099-01-01T00:00:00Z",
            "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["big"]},
            "robot_username": f"{USER}+slow_bot",
            "external_registry_config": {"verify_tls": False},
        }
        mirror = api(ui_env, "POST", f"/repository/{USER}/slow/mirror", json=body)
        assert mirror.status_code == 201, mirror.text

        sign_in(page, f"/ui/repository/{USER}/slow/mirror")
        status = page.locator(".sync-status")
        expect(status).to_have_attribute("data-status", "NEVER_RUN")
        expect(page.get_by_role("button", name="Cancel sync")).to_be_disabled()
        page.get_by_role("button", name="Sync now").click()
        expect(status).to_have_attribute("data-status", "SYNCING", timeout=30_000)
        expect(page.locator(".progress-tags")).to_have_text("0 of 1 tags", timeout=30_000)
        assert proxy.wait_for_bytes(1024 * 1024, timeout=30)
        assert proxy.bytes_down < SLOW_LAYER  # the large layer is still streaming
        screenshot(page, "mirror-syncing")
        page.get_by_role("button", name="Cancel sync").click()
        expect(status).to_have_attribute("data-status", "CANCEL", timeout=30_000)
        expect(page.locator(".status-text")).to_contain_text("cancelled")
        expect(page.locator("table.runs tbody tr").first).to_contain_text(
            "cancelled", timeout=30_000
        )
        expect(page.get_by_role("button", name="Cancel sync")).to_be_disabled()
        expect(page.locator(".status-card")).to_contain_text("0 copied")
        tags = api(ui_env, "GET", f"/repository/{USER}/slow/tag/").json()["tags"]
        assert tags == []  # the cancel landed inside the large layer: nothing half-copied
    watch.assert_clean()


def test_a_failed_sync_is_explained(page: Any, ui_env: UiEnv, watch: Watch) -> None:
    assert api(ui_env, "POST", "/repository", json={"repository": "broken"}).status_code == 201
    assert api(ui_env, "PUT", "/user/robots/broken_bot", json={}).status_code == 201
    body = {
        "external_reference": f"{ui_env.upstream.host}/library/does-not-exist",
        "sync_interval": 86400,
        "sync_start_date": "2099-01-01T00:00:00Z",
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["*"]},
        "robot_username": f"{USER}+broken_bot",
        "external_registry_config": {"verify_tls": False},
    }
    assert api(ui_env, "POST", f"/repository/{USER}/broken/mirror", json=body).status_code == 201
    sign_in(page, f"/ui/repository/{USER}/broken/mirror")
    page.get_by_role("button", name="Sync now").click()
    last_error = page.locator(".last-error")
    expect(last_error).to_contain_text("was not found", timeout=SYNC_TIMEOUT)
    expect(page.locator(".sync-status")).to_have_attribute("data-status", "FAIL")
    expect(page.locator("table.runs tbody tr").first).to_contain_text("failed")
    last_error.get_by_text("Technical details").click()
    expect(last_error.locator("code")).to_have_text("not_found")
    screenshot(page, "mirror-error")
    watch.assert_clean()


def test_robots_logs_health_and_sign_out(page: Any, ui_env: UiEnv, watch: Watch) -> None:
    created = api(ui_env, "POST", "/repository", json={"repository": "logged"})
    assert created.status_code == 201, created.text

    # Keyboard only: the username field has focus; Tab to the password, Enter submits.
    page.goto("/ui/robots/admin")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(USER)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Robot accounts")).to_be_visible()
    expect(page).to_have_url(f"{ui_env.moorage.url}/ui/robots/admin")

    page.locator("summary", has_text="Create robot account").click()
    page.get_by_label("Short name").fill("Bad Name")
    page.get_by_role("button", name="Create robot").click()
    expect(field_error(page, "robot_shortname")).to_be_visible()
    page.get_by_label("Short name").fill("deployer")
    page.get_by_label("Description").fill("CI deployments")
    page.get_by_role("button", name="Create robot").click()
    expect(page.locator(".token-notice")).to_contain_text(f"{USER}+deployer")
    expect(page.locator("table tbody")).to_contain_text("CI deployments")
    assert unlabelled_controls(page) == []
    screenshot(page, "robots")

    page.get_by_role("link", name="Usage logs").click()
    expect(page.get_by_role("heading", name="Usage logs")).to_be_visible()
    expect(page.locator("table.logs tbody")).to_contain_text("create_repo")
    screenshot(page, "logs")

    page.get_by_role("link", name="Registry health").click()
    expect(page.get_by_role("heading", name="Mirror health")).to_be_visible()
    expect(page.locator(".stat").first).to_be_visible()
    expect(page.get_by_role("heading", name="Mirrors")).to_be_visible()
    screenshot(page, "health")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Moorage")).to_be_visible()
    page.goto("/ui/repositories")
    expect(page).to_have_url(f"{ui_env.moorage.url}/ui/signin?next=%2Fui%2Frepositories")
    watch.assert_clean()


def test_repository_notifications_from_the_browser(page: Any, ui_env: UiEnv, watch: Watch) -> None:
    created = api(ui_env, "POST", "/repository", json={"repository": "notified"})
    assert created.status_code == 201, created.text
    with run_receiver() as hook:
        sign_in(page, f"/ui/repository/{USER}/notified")
        page.get_by_role("link", name="Notifications").click()
        expect(page).to_have_url(
            f"{ui_env.moorage.url}/ui/repository/{USER}/notified/notifications"
        )
        rows = page.locator("table[aria-label='Notifications'] tbody tr")
        expect(rows).to_have_text(["No notifications yet."])

        # A URL the API refuses: its message appears next to the URL field.
        page.locator("summary", has_text="Create notification").click()
        page.get_by_label("Event").select_option(label="Mirror sync failed")
        page.get_by_label("Webhook URL").fill("ftp://x")
        page.get_by_role("button", name="Create notification").click()
        expect(field_error(page, "url")).to_contain_text("only http:// and https://")
        expect(page.get_by_label("Webhook URL")).to_have_attribute("aria-invalid", "true")
        assert unlabelled_controls(page) == []

        page.get_by_label("Webhook URL").fill(hook.url("/moorage"))
        page.get_by_label("Title", exact=True).fill("UI hook")
        page.get_by_role("button", name="Create notification").click()
        expect(field_error(page, "url")).to_have_count(0)
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("UI hook")
        expect(rows.first).to_contain_text("Mirror sync failed")
        expect(rows.first).to_contain_text(hook.url("/moorage"))
        expect(rows.first.get_by_role("button", name="Reset failures")).to_have_count(0)
        screenshot(page, "notifications")

        # Send test: the receiver gets Quay's sample data for the repository.
        rows.first.get_by_role("button", name="Send test").click()
        expect(page.locator("#toast")).to_contain_text("Test notification queued")
        deadline = time.monotonic() + 20
        while not hook.delivered() and time.monotonic() < deadline:
            time.sleep(0.2)
        delivered = hook.delivered()
        assert delivered, f"no delivery: {hook.snapshot()}"
        assert delivered[0].path == "/moorage"
        assert delivered[0].body["repository"] == f"{USER}/notified"

        page.once("dialog", lambda dialog: dialog.accept())
        rows.first.get_by_role("button", name="Delete").click()
        expect(rows).to_have_text(["No notifications yet."])
    listed = api(ui_env, "GET", f"/repository/{USER}/notified/notification/").json()
    assert listed == {"notifications": []}
    watch.assert_clean()
    assert unlabelled_controls(page) == []
