"""`moorage admin ...`: bootstrap accounts from the command line."""

from __future__ import annotations

import asyncio
import getpass
import secrets
from collections.abc import Callable
from pathlib import Path

import click

from moorage.auth import scopes as sc
from moorage.config import Settings
from moorage.db.engine import Database
from moorage.db.migrate import upgrade
from moorage.errors import MoorageError
from moorage.services.accounts import AccountService
from moorage.services.audit import Actor


@click.group(help="Administrative tasks (accounts, tokens).")
def admin() -> None:
    pass


async def _create_user(
    settings: Settings, name: str, password: str, email: str | None, superuser: bool
) -> str:
    db = Database(settings.database_url)
    try:
        await upgrade(db)
        accounts = AccountService(db, settings.SUPER_USERS)
        account = await accounts.create_user(
            name, password, email, Actor.system(), superuser=superuser
        )
        scopes = (
            list(sc.ALL_SCOPES) if superuser else [s for s in sc.ALL_SCOPES if s != sc.SUPER_USER]
        )
        created = await accounts.create_token(account.id, "cli bootstrap", scopes, Actor.system())
        return created.secret
    finally:
        await db.dispose()


def register(main: click.Group, settings_loader: Callable[[Path | None], Settings]) -> None:
    """Attach `admin` to the main CLI; ``settings_loader(config_path)`` returns Settings."""

    @admin.command("create-user", help="Create a user and print an access token for it.")
    @click.argument("name")
    @click.option("--email", default=None)
    @click.option("--superuser", is_flag=True, help="Make the user a superuser.")
    @click.option(
        "--password",
        default=None,
        help="Password (default: prompt; with --generate-password a random one is printed).",
    )
    @click.option("--generate-password", is_flag=True)
    @click.option(
        "--config", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path)
    )
    def create_user(
        name: str,
        email: str | None,
        superuser: bool,
        password: str | None,
        generate_password: bool,
        config_path: Path | None,
    ) -> None:
        settings = settings_loader(config_path)
        if generate_password:
            password = secrets.token_urlsafe(18)
        elif password is None:
            password = getpass.getpass(f"Password for {name}: ")
        try:
            token = asyncio.run(_create_user(settings, name, password, email, superuser))
        except MoorageError as exc:
            raise click.ClickException(exc.message) from exc
        if generate_password:
            click.echo(f"password: {password}")
        click.echo(f"access token (shown once): {token}")

    main.add_command(admin)
