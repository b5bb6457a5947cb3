"""`moorage admin rotate-secret-key`: re-encrypt credentials at rest with DATABASE_SECRET_KEY.

Output never contains a credential or a key: values are named by row and column only.
Exit status 0 means every encrypted value uses the current key (with ``--dry-run``: every value
can be decrypted), so DATABASE_SECRET_KEY_PREVIOUS may then be emptied.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from moorage.auth.crypto import field_cipher
from moorage.config import Settings
from moorage.db.engine import Database
from moorage.services.key_rotation import DEFAULT_BATCH_SIZE, KeyRotation, RotationReport

MAX_BATCH_SIZE = 10_000


async def _rotate(settings: Settings, dry_run: bool, batch_size: int) -> RotationReport:
    db = Database(settings.database_url)
    try:
        rotation = KeyRotation(db, field_cipher(settings), batch_size)
        total = await rotation.total_rows()
        label = "checking" if dry_run else "re-encrypting"
        with click.progressbar(length=total, label=f"{label} {total} rows", file=sys.stderr) as bar:
            return await rotation.run(dry_run=dry_run, progress=bar.update)
    finally:
        await db.dispose()


def _database_error(exc: SQLAlchemyError) -> click.ClickException:
    # The DBAPI message only: SQLAlchemy's own text would list the statement's parameters.
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    first_line = next(iter(str(cause).splitlines()), "")
    return click.ClickException(
        f"database error: {type(cause).__name__}: {first_line} "
        "(is the database reachable and migrated? `moorage migrate` applies migrations)"
    )


def _summary(report: RotationReport, previous_keys: int) -> None:
    if report.dry_run:
        click.echo(
            f"dry run: {report.rotated} of {report.values} encrypted values in {report.rows} "
            f"rows would be re-encrypted, {report.current} already use DATABASE_SECRET_KEY; "
            "nothing was written"
        )
    else:
        click.echo(
            f"re-encrypted {report.rotated} of {report.values} encrypted values in "
            f"{report.rows} rows with DATABASE_SECRET_KEY ({report.current} already used it)"
        )
    for item in report.unreadable:
        click.echo(f"cannot decrypt: {item.what} {item.column}", err=True)
    if report.unreadable:
        raise click.ClickException(
            f"{len(report.unreadable)} encrypted values cannot be decrypted with "
            f"DATABASE_SECRET_KEY or any of the {previous_keys} DATABASE_SECRET_KEY_PREVIOUS "
            "keys and were left unchanged: add the key they were written with to "
            "DATABASE_SECRET_KEY_PREVIOUS and run again, or re-enter those credentials "
            "(PUT .../mirror). Keep the previous keys until this succeeds."
        )
    if report.changed:
        raise click.ClickException(
            f"{report.changed} values were changed by another writer while this ran: "
            "run the command again to check them"
        )
    if not report.dry_run:
        click.echo(
            "every encrypted value uses DATABASE_SECRET_KEY: DATABASE_SECRET_KEY_PREVIOUS may "
            "now be removed from the configuration of every node"
        )


def register(main: click.Group, settings_loader: Callable[[Path | None], Settings]) -> None:
    """Attach `rotate-secret-key` to the `admin` group (registered on ``main`` before)."""
    admin = main.commands["admin"]
    if not isinstance(admin, click.Group):
        raise TypeError("`admin` must be a command group")

    @admin.command(
        "rotate-secret-key",
        help="Re-encrypt every credential stored at rest (upstream mirror usernames and "
        "passwords) with DATABASE_SECRET_KEY; values written with a key in "
        "DATABASE_SECRET_KEY_PREVIOUS are decrypted with it. In batches, one transaction "
        "each; idempotent (run it again after an interruption). Exit status 0 means no "
        "value needs a previous key any more.",
    )
    @click.option(
        "--config", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path)
    )
    @click.option("--dry-run", is_flag=True, help="Only report what would change; write nothing.")
    @click.option(
        "--batch-size",
        type=click.IntRange(1, MAX_BATCH_SIZE),
        default=DEFAULT_BATCH_SIZE,
        show_default=True,
        help="Rows per transaction.",
    )
    def rotate_secret_key(config_path: Path | None, dry_run: bool, batch_size: int) -> None:
        settings = settings_loader(config_path)
        previous_keys = len(settings.DATABASE_SECRET_KEY_PREVIOUS)
        if not previous_keys:
            click.echo(
                "no DATABASE_SECRET_KEY_PREVIOUS configured: only values already using "
                "DATABASE_SECRET_KEY can be read",
                err=True,
            )
        try:
            report = asyncio.run(_rotate(settings, dry_run, batch_size))
        except SQLAlchemyError as exc:
            raise _database_error(exc) from None
        _summary(report, previous_keys)
