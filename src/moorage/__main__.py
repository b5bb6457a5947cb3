"""Command line: `moorage serve | migrate | gc`. Parses args, loads Settings, starts one role."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import click
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from moorage import __version__
from moorage.app import build, build_deliverer, build_worker, create_app
from moorage.cli_admin import register as register_admin
from moorage.cli_fsck import register as register_fsck
from moorage.cli_keys import register as register_keys
from moorage.cli_mirror import mirror as mirror_cli
from moorage.config import Settings, load_settings
from moorage.configdoc import render as render_config_docs
from moorage.db.engine import Database
from moorage.db.migrate import upgrade, upgrade_sync
from moorage.errors import ConfigError
from moorage.observability.logs import configure_logging
from moorage.observability.metrics import Metrics
from moorage.observability.worker_http import worker_listener
from moorage.services.accounts import AccountService
from moorage.services.gc import GarbageCollector, GcReport
from moorage.services.registry import RegistryServices
from moorage.storage.factory import build_driver

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="config.yaml path (default: $MOORAGE_CONFIG, else embedded defaults).",
)


def _settings(config_path: Path | None, **overrides: object) -> Settings:
    path = config_path or (
        Path(os.environ["MOORAGE_CONFIG"]) if os.environ.get("MOORAGE_CONFIG") else None
    )
    try:
        return load_settings(path, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _logging(level: str, settings: Settings) -> None:
    configure_logging(level, settings.LOG_FORMAT)


def _say(settings: Settings, message: str) -> None:
    """A start-up message for the operator: plain on stderr, or a log line in JSON mode."""
    if settings.LOG_FORMAT == "json":
        logging.getLogger("moorage").info(message)
    else:
        click.echo(message, err=True)


@click.group(help="Moorage: a container registry with Quay-compatible repository mirroring.")
@click.version_option(__version__, prog_name="moorage")
def main() -> None:
    pass


@main.command(help="Run the registry and the /api/v1 management API (migrates the DB first).")
@CONFIG_OPTION
@click.option("--host", default=None, help="Listen address (config HTTP_HOST, default 127.0.0.1).")
@click.option(
    "--port", type=int, default=None, help="Listen port (config HTTP_PORT, default 8080)."
)
@click.option("--log-level", default="info", show_default=True)
@click.option("--no-worker", is_flag=True, help="Do not run the mirror worker in this process.")
def serve(
    config_path: Path | None, host: str | None, port: int | None, log_level: str, no_worker: bool
) -> None:
    settings = _settings(config_path, HTTP_HOST=host, HTTP_PORT=port)
    _logging(log_level, settings)
    upgrade_sync(settings.database_url)
    app = create_app(
        settings, run_worker=settings.REPO_MIRROR_WORKER and not no_worker, maintenance=True
    )
    config = uvicorn.Config(
        app,
        host=settings.HTTP_HOST,
        port=settings.HTTP_PORT,
        log_level=log_level,
        access_log=False,
        # JSON: uvicorn's own lines go through our handler too (None: uvicorn adds none).
        log_config=None if settings.LOG_FORMAT == "json" else LOGGING_CONFIG,
        proxy_headers=True,
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=1024 * 1024,
    )
    server = uvicorn.Server(config)
    if not asyncio.run(_has_users(settings)) and not settings.INSECURE_OPEN_REGISTRY_NO_AUTH:
        _say(
            settings,
            "No users yet: create one with `moorage admin create-user NAME --superuser "
            "--generate-password`.",
        )
    _say(
        settings,
        f"Moorage {__version__} serving on http://{settings.HTTP_HOST}:{settings.HTTP_PORT} "
        f"(data: {settings.DATA_DIR.resolve()}, db: {settings.database_url.split('://')[0]}, "
        f"storage: {settings.storage_entry[0]})",
    )
    server.run()


async def _has_users(settings: Settings) -> bool:
    db = Database(settings.database_url)
    try:
        return await AccountService(db, settings.SUPER_USERS).has_users()
    finally:
        await db.dispose()


@main.command(help="Run only the mirror worker (any number may share one database).")
@CONFIG_OPTION
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--metrics-host",
    default=None,
    help="Address of the /metrics and /health/instance listener (config WORKER_METRICS_HOST, "
    "default 127.0.0.1).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics and /health/instance on this port (config WORKER_METRICS_PORT; "
    "default: no listener).",
)
def worker(
    config_path: Path | None, log_level: str, metrics_host: str | None, metrics_port: int | None
) -> None:
    settings = _settings(
        config_path, WORKER_METRICS_HOST=metrics_host, WORKER_METRICS_PORT=metrics_port
    )
    _logging(log_level, settings)
    upgrade_sync(settings.database_url)
    try:
        asyncio.run(_run_worker(settings, log_level))
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc


async def _run_worker(settings: Settings, log_level: str = "info") -> None:
    db = Database(settings.database_url, pool_size=settings.DB_POOL_SIZE)
    storage = build_driver(settings)
    metrics = Metrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with worker_listener(settings, db, storage, metrics, log_level) as driver:
            wiring = build(settings, db, driver)
            worker = build_worker(settings, wiring, metrics)
            deliverer = build_deliverer(settings, wiring, worker.owner, metrics)
            await asyncio.gather(worker.run(stop), deliverer.run(stop))
    finally:
        await storage.close()
        await db.dispose()


@main.command(help="Apply database migrations up to the newest schema, then exit.")
@CONFIG_OPTION
def migrate(config_path: Path | None) -> None:
    settings = _settings(config_path)
    upgrade_sync(settings.database_url)
    click.echo("database is at the newest schema")


@main.command(
    help="Delete unreferenced manifests and blobs and stale uploads (safe while serving)."
)
@CONFIG_OPTION
@click.option("--grace-seconds", type=int, default=None, help="Override GC_GRACE_PERIOD_SECONDS.")
def gc(config_path: Path | None, grace_seconds: int | None) -> None:
    settings = _settings(config_path)
    report = asyncio.run(_run_gc(settings, grace_seconds))
    click.echo(report.summary())


async def _run_gc(settings: Settings, grace_seconds: int | None) -> GcReport:
    db = Database(settings.database_url)
    storage = build_driver(settings)
    try:
        await upgrade(db)
        services = RegistryServices.build(settings, db, storage)
        grace = settings.GC_GRACE_PERIOD_SECONDS if grace_seconds is None else grace_seconds
        collector = GarbageCollector(db, storage, services.uploads, grace)
        return await collector.run(settings.UPLOAD_PURGE_AFTER_SECONDS)
    finally:
        await storage.close()
        await db.dispose()


@main.command("config-docs", help="Print docs/configuration.md (every config key).")
def config_docs() -> None:
    click.echo(render_config_docs(), nl=False)


register_admin(main, _settings)
register_fsck(main, _settings)
register_keys(main, _settings)
main.add_command(mirror_cli)


if __name__ == "__main__":
    main()
