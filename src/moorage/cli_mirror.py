"""`moorage mirror ...`: manage mirrors through the HTTP API with an access token."""

from __future__ import annotations

import json
import time
from typing import Any

import click
import httpx

TERMINAL = {"SUCCESS", "FAIL", "CANCEL"}


class Api:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.client = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            trust_env=False,
        )

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach Moorage: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise click.ClickException(f"{method} {path}: {response.status_code} {detail}")
        return response.json() if response.content else None


def _repo_path(repository: str) -> str:
    namespace, sep, name = repository.partition("/")
    if not sep or not name:
        raise click.BadParameter("use namespace/repository", param_hint="REPOSITORY")
    return f"/repository/{namespace}/{name}/mirror"


@click.group(help="Manage repository mirrors through the HTTP API.")
@click.option("--url", envvar="MOORAGE_URL", default="http://127.0.0.1:8080", show_default=True)
@click.option(
    "--token", envvar="MOORAGE_TOKEN", required=True, help="Access token ($MOORAGE_TOKEN)."
)
@click.pass_context
def mirror(ctx: click.Context, url: str, token: str) -> None:
    ctx.obj = Api(url, token)


@mirror.command("list", help="Mirrors of a namespace (or all, for superusers).")
@click.option("--namespace", default=None)
@click.pass_obj
def list_mirrors(api: Api, namespace: str | None) -> None:
    query = "?detailed=true&limit=1000" + (f"&namespace={namespace}" if namespace else "")
    response = api.client.get(f"/repository/mirror/health{query}")
    if response.status_code not in {200, 503}:
        raise click.ClickException(f"{response.status_code} {response.text}")
    for row in response.json()["repositories"].get("details", []):
        click.echo(
            f"{row['namespace']}/{row['repository']}\t{row['sync_status']}\t"
            f"last sync {row['last_sync'] or 'never'}"
        )


@mirror.command(help="Show a mirror's configuration and status as JSON.")
@click.argument("repository")
@click.pass_obj
def show(api: Api, repository: str) -> None:
    click.echo(json.dumps(api.call("GET", _repo_path(repository)), indent=2))


@mirror.command(help="Create a mirror (Quay's fields).")
@click.argument("repository")
@click.option("--source", required=True, help="host[:port]/path of the upstream repository")
@click.option("--robot", required=True, help="namespace+robot that owns the mirrored tags")
@click.option("--tags", "patterns", default="*", show_default=True, help="comma-separated globs")
@click.option("--interval", type=int, default=86400, show_default=True)
@click.option("--start", default=None, help="YYYY-MM-DDTHH:MM:SSZ (default: now)")
@click.option("--username", default=None)
@click.option(
    "--password",
    default=None,
    help="prefer $MOORAGE_UPSTREAM_PASSWORD",
    envvar="MOORAGE_UPSTREAM_PASSWORD",
)
@click.option("--no-verify-tls", is_flag=True)
@click.pass_obj
def create(
    api: Api,
    repository: str,
    source: str,
    robot: str,
    patterns: str,
    interval: int,
    start: str | None,
    username: str | None,
    password: str | None,
    no_verify_tls: bool,
) -> None:
    body: dict[str, Any] = {
        "external_reference": source,
        "robot_username": robot,
        "root_rule": {
            "rule_kind": "tag_glob_csv",
            "rule_value": [p.strip() for p in patterns.split(",") if p.strip()],
        },
        "sync_interval": interval,
        "sync_start_date": start or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "external_registry_config": {"verify_tls": not no_verify_tls},
    }
    if username is not None:
        body["external_registry_username"] = username
        body["external_registry_password"] = password
    api.call("POST", _repo_path(repository), body)
    click.echo(f"mirror created for {repository}")


@mirror.command("sync-now", help="Start a sync now; --wait shows its progress.")
@click.argument("repository")
@click.option("--wait", is_flag=True)
@click.option("--timeout", type=float, default=3600, show_default=True)
@click.pass_obj
def sync_now(api: Api, repository: str, wait: bool, timeout: float) -> None:
    api.call("POST", f"{_repo_path(repository)}/sync-now")
    if wait:
        _wait(api, repository, timeout)
    else:
        click.echo("sync requested")


@mirror.command(help="Cancel a queued or running sync.")
@click.argument("repository")
@click.pass_obj
def cancel(api: Api, repository: str) -> None:
    api.call("POST", f"{_repo_path(repository)}/sync-cancel")
    click.echo("sync cancelled")


@mirror.command(help="Past sync runs, newest first.")
@click.argument("repository")
@click.option("--limit", type=int, default=20, show_default=True)
@click.pass_obj
def runs(api: Api, repository: str, limit: int) -> None:
    for run in api.call("GET", f"{_repo_path(repository)}/runs?limit={limit}")["runs"]:
        click.echo(
            f"#{run['id']}\t{run['status']}\t{run['started']} → {run['finished'] or '…'}\t"
            f"copied {run['tags_copied']} skipped {run['tags_skipped']} failed "
            f"{run['tags_failed']} deleted {run['tags_deleted']}\t{run['bytes']} B"
            + (f"\t{run['error_kind']}: {run['error_message']}" if run["error_kind"] else "")
        )


def _wait(api: Api, repository: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    shown = 0
    with click.progressbar(length=1, label="waiting for the worker", show_pos=True) as bar:
        while time.monotonic() < deadline:
            body = api.call("GET", _repo_path(repository))
            current = body.get("current_sync")
            if current and current["tags_total"]:
                done = current["tags_copied"] + current["tags_skipped"] + current["tags_failed"]
                bar.length = current["tags_total"]
                bar.label = f"syncing ({current['bytes']} B)"
                bar.update(done - shown)
                shown = done
            if body["sync_status"] in TERMINAL and current is None:
                break
            time.sleep(1)
        else:
            raise click.ClickException("timed out waiting for the sync")
    last = body.get("last_sync") or {}
    click.echo(
        f"{body['sync_status']}: copied {last.get('tags_copied', 0)}, "
        f"skipped {last.get('tags_skipped', 0)}, failed {last.get('tags_failed', 0)}"
    )
    if body["sync_status"] != "SUCCESS":
        error = body.get("last_error") or {}
        raise click.ClickException(f"sync ended {body['sync_status']}: {error.get('message')}")
