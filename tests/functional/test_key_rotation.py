"""Rotating DATABASE_SECRET_KEY: previous keys still decrypt, `moorage admin rotate-secret-key`
re-encrypts every credential with the current key, and a wrong key is reported, never a 500 and
never with a secret in the output. Runs on SQLite + filesystem and PostgreSQL + S3."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from argon2 import PasswordHasher
from click.testing import CliRunner, Result
from fastapi import FastAPI
from sqlalchemy import select

from moorage.__main__ import main
from moorage.app import create_app
from moorage.auth import passwords
from moorage.auth import scopes as sc
from moorage.auth.crypto import DecryptionFailure, FieldCipher, field_cipher
from moorage.config import Settings, load_settings
from moorage.db.engine import Database
from moorage.db.models import MirrorConfig, Repository
from moorage.db.queries.secrets import ENCRYPTED, SecretQueries
from moorage.errors import ConfigError
from moorage.services.audit import Actor
from moorage.services.key_rotation import KeyRotation
from tests.api.mirror.conftest import mirror_body

anyio = pytest.mark.anyio
SRC = Path(__file__).resolve().parents[2] / "src" / "moorage"

KEY_A = "old-key-" + "A1" * 24
KEY_B = "new-key-" + "B2" * 24
KEY_C = "unrelated-key-" + "C3" * 24
OWNER = "owner"
ROBOT = f"{OWNER}+mirrorbot"
# repository -> (upstream username, upstream password); plaintexts that must never be shown.
CREDENTIALS: dict[str, tuple[str | None, str | None]] = {
    "one": ("upstream-user-one", "upstream-Secret-one-7f3a"),
    "two": ("upstream-user-two", None),
    "three": ("upstream-user-three", "upstream-Secret-three-91c2"),
    "plain": (None, None),
}
PLAINTEXTS = [v for pair in CREDENTIALS.values() for v in pair if v]
SEALED_VALUES = len(PLAINTEXTS)
SEALED_ROWS = sum(1 for pair in CREDENTIALS.values() if any(pair))


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with minimal cost: the one user here is never attacked."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


def node_config(
    base: dict[str, Any], key: str, previous: list[str] | None = None
) -> dict[str, Any]:
    return {
        **base,
        "INSECURE_OPEN_REGISTRY_NO_AUTH": False,
        "SUPER_USERS": ["admin"],
        "SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"],
        "REPO_MIRROR_INTERVAL": 1,
        "DATABASE_SECRET_KEY": key,
        "DATABASE_SECRET_KEY_PREVIOUS": previous or [],
    }


@dataclass
class Node:
    """One Moorage process: its app, an HTTP client and its settings."""

    app: FastAPI
    http: httpx.AsyncClient
    settings: Settings
    token: str = ""

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def mirror(self, repo: str) -> httpx.Response:
        return await self.http.get(f"/api/v1/repository/{OWNER}/{repo}/mirror", headers=self.auth())


@asynccontextmanager
async def node(
    config: dict[str, Any], database: Database, token: str = "", worker: bool = False
) -> AsyncIterator[Node]:
    settings = load_settings(None, **config)
    app = create_app(settings, database=database, run_worker=worker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
            yield Node(app, c, settings, token)


async def seed(config: dict[str, Any], database: Database) -> str:
    """Under ``config``'s key: the owner, its robot, and a mirror per CREDENTIALS entry."""
    async with node(config, database) as n:
        accounts = n.app.state.accounts
        account = await accounts.create_user(OWNER, "owner password 1", None, Actor.system())
        n.token = (
            await accounts.create_token(account.id, "t", list(sc.ALL_SCOPES), Actor.system())
        ).secret
        await accounts.create_robot(
            OWNER, "mirrorbot", None, Actor(accounts.principal_for(account))
        )
        for repo, (username, password) in CREDENTIALS.items():
            created = await n.http.post(
                "/api/v1/repository",
                json={"namespace": OWNER, "repository": repo, "visibility": "private"},
                headers=n.auth(),
            )
            assert created.status_code == 201, created.text
            body = mirror_body(
                robot_username=ROBOT, external_reference=f"127.0.0.1:9/upstream/{repo}"
            )
            if username:
                body["external_registry_username"] = username
            if password:
                body["external_registry_password"] = password
            response = await n.http.post(
                f"/api/v1/repository/{OWNER}/{repo}/mirror", json=body, headers=n.auth()
            )
            assert response.status_code == 201, response.text
        return n.token


async def raw_columns(database: Database) -> dict[str, tuple[str | None, str | None]]:
    """The stored (encrypted) column values, by repository name."""
    async with database.transaction(readonly=True) as session:
        rows = await session.execute(
            select(
                Repository.name,
                MirrorConfig.external_registry_username,
                MirrorConfig.external_registry_password,
            ).join(Repository, Repository.id == MirrorConfig.repository_id)
        )
        return {row[0]: (row[1], row[2]) for row in rows}


async def rotate_cli(config: dict[str, Any], tmp_path: Path, *args: str) -> Result:
    """`moorage admin rotate-secret-key --config F ARGS` in a thread (it runs its own loop)."""
    path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(config, default=str))))
    command = ["admin", "rotate-secret-key", "--config", str(path), *args]
    return await asyncio.to_thread(CliRunner().invoke, main, command)


def assert_no_secret(text: str) -> None:
    for secret in [*PLAINTEXTS, KEY_A, KEY_B, KEY_C]:
        assert secret not in text


def assert_decrypt(cipher: FieldCipher, raw: dict[str, tuple[str | None, str | None]]) -> None:
    for repo, (username, password) in CREDENTIALS.items():
        sealed_user, sealed_pass = raw[repo]
        assert (cipher.decrypt(sealed_user) if sealed_user else None) == username
        assert (cipher.decrypt(sealed_pass) if sealed_pass else None) == password


async def wait_for_error(n: Node, repo: str) -> dict[str, Any]:
    """Trigger a sync of ``repo`` and wait for its run to end with an error."""
    sync = await n.http.post(f"/api/v1/repository/{OWNER}/{repo}/mirror/sync-now", headers=n.auth())
    assert sync.status_code == 204, sync.text
    for _ in range(300):
        body = (await n.mirror(repo)).json()
        if body["last_error"] is not None:
            error: dict[str, Any] = body["last_error"]
            return error
        await asyncio.sleep(0.1)
    raise AssertionError(f"no sync of {repo} ended within 30 s")


# --- the whole procedure -------------------------------------------------------------------------


@anyio
async def test_rotation_procedure(
    base_config: dict[str, Any], database: Database, tmp_path: Path
) -> None:
    token = await seed(node_config(base_config, KEY_A), database)
    under_a = await raw_columns(database)
    assert_decrypt(FieldCipher(KEY_A), under_a)

    # 1. Every node runs with key B, key A as previous: everything still decrypts.
    rotating = node_config(base_config, KEY_B, [KEY_A])
    async with node(rotating, database, token, worker=True) as n:
        for repo, (username, _) in CREDENTIALS.items():
            response = await n.mirror(repo)
            assert response.status_code == 200, response.text
            assert response.json()["external_registry_username"] == username
            assert_no_secret(response.text.replace(username or "\0", ""))
        # The sync gets past the credentials (it fails later: nothing listens on port 9).
        error = await wait_for_error(n, "one")
        assert error["kind"] not in {"decryption_failed", "internal"}, error
        assert_decrypt(field_cipher(n.settings), under_a)
        # A credential entered now is written with key B.
        changed = await n.http.put(
            f"/api/v1/repository/{OWNER}/three/mirror",
            json={"external_registry_username": CREDENTIALS["three"][0]},
            headers=n.auth(),
        )
        assert changed.status_code == 201, changed.text
    mixed = await raw_columns(database)
    assert mixed["three"][0] != under_a["three"][0]
    assert FieldCipher(KEY_B).decrypt(mixed["three"][0] or "") == CREDENTIALS["three"][0]
    needing_rotation = SEALED_VALUES - 1

    # 2. A dry run reports and writes nothing.
    dry = await rotate_cli(rotating, tmp_path, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"dry run: {needing_rotation} of {SEALED_VALUES} encrypted values" in dry.stdout
    assert f"in {SEALED_ROWS} rows" in dry.stdout
    assert await raw_columns(database) == mixed
    assert_no_secret(dry.output)

    # 3. The rotation, in batches of one row (one transaction each), with a progress bar.
    done = await rotate_cli(rotating, tmp_path, "--batch-size", "1")
    assert done.exit_code == 0, done.output
    assert f"re-encrypting {SEALED_ROWS} rows" in done.stderr  # the progress bar's label
    assert f"re-encrypted {needing_rotation} of {SEALED_VALUES} encrypted values" in done.stdout
    assert "(1 already used it)" in done.stdout
    assert "DATABASE_SECRET_KEY_PREVIOUS may now be removed" in done.stdout
    assert_no_secret(done.output)
    rotated = await raw_columns(database)
    for repo, (username, password) in CREDENTIALS.items():
        for before, after, plain in zip(
            mixed[repo], rotated[repo], (username, password), strict=True
        ):
            if plain is None:
                assert after is None
            elif repo == "three" and plain == username:
                assert after == before  # already under key B: left alone
            else:
                assert after != before
                with pytest.raises(DecryptionFailure):
                    FieldCipher(KEY_A).decrypt(after or "")

    # 4. Idempotent: a second run changes nothing.
    again = await rotate_cli(rotating, tmp_path)
    assert again.exit_code == 0, again.output
    assert f"re-encrypted 0 of {SEALED_VALUES}" in again.stdout
    assert await raw_columns(database) == rotated

    # 5. Key A removed from the configuration: everything decrypts with key B alone.
    final = node_config(base_config, KEY_B)
    assert_decrypt(FieldCipher(KEY_B), rotated)
    async with node(final, database, token) as n:
        for repo, (username, _) in CREDENTIALS.items():
            response = await n.mirror(repo)
            assert response.status_code == 200, response.text
            assert response.json()["external_registry_username"] == username
    check = await rotate_cli(final, tmp_path, "--dry-run")
    assert check.exit_code == 0, check.output
    assert f"dry run: 0 of {SEALED_VALUES}" in check.stdout


# --- a wrong key ---------------------------------------------------------------------------------


@anyio
async def test_wrong_key_in_the_api_is_reported_not_500(
    base_config: dict[str, Any], database: Database
) -> None:
    token = await seed(node_config(base_config, KEY_A), database)
    async with node(node_config(base_config, KEY_C, [KEY_B]), database, token) as n:
        for repo, (username, _) in CREDENTIALS.items():
            response = await n.mirror(repo)
            assert response.status_code == 200, response.text
            shown = response.json()["external_registry_username"]
            assert shown == ("(invalid. please re-enter)" if username else None)
            assert_no_secret(response.text)


@anyio
async def test_wrong_key_in_a_sync_is_decryption_failed(
    base_config: dict[str, Any], database: Database
) -> None:
    token = await seed(node_config(base_config, KEY_A), database)
    async with node(node_config(base_config, KEY_C), database, token, worker=True) as n:
        error = await wait_for_error(n, "one")
        assert_no_secret(json.dumps(error))
        assert error["kind"] == "decryption_failed", error


@anyio
async def test_wrong_key_in_the_rotation_is_reported_and_changes_nothing(
    base_config: dict[str, Any], database: Database, tmp_path: Path
) -> None:
    await seed(node_config(base_config, KEY_A), database)
    before = await raw_columns(database)
    result = await rotate_cli(node_config(base_config, KEY_C, [KEY_B]), tmp_path)
    assert result.exit_code == 1, result.output
    assert_no_secret(result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"{SEALED_VALUES} encrypted values cannot be decrypted" in result.stderr
    assert "add the key they were written with to DATABASE_SECRET_KEY_PREVIOUS" in result.stderr
    for repo, (username, password) in CREDENTIALS.items():
        for column, plain in (
            ("external_registry_username", username),
            ("external_registry_password", password),
        ):
            line = f"cannot decrypt: mirror {OWNER}/{repo} {column}"
            assert (line in result.stderr) == (plain is not None), (line, result.stderr)
    assert await raw_columns(database) == before

    # The right previous key makes the same run succeed.
    fixed = await rotate_cli(node_config(base_config, KEY_C, [KEY_B, KEY_A]), tmp_path)
    assert fixed.exit_code == 0, fixed.output
    assert_decrypt(FieldCipher(KEY_C), await raw_columns(database))


# --- resumable, never overwriting a concurrent change ----------------------------------------


@anyio
async def test_an_interrupted_rotation_resumes(
    base_config: dict[str, Any], database: Database
) -> None:
    await seed(node_config(base_config, KEY_A), database)
    rotation = KeyRotation(database, FieldCipher(KEY_B, [KEY_A]), batch_size=1)
    assert await rotation.total_rows() == SEALED_ROWS
    batches: list[int] = []

    def crash_after_first(rows: int) -> None:
        batches.append(rows)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await rotation.run(progress=crash_after_first)
    assert batches == [1]
    # The first batch (one row) was committed before the interruption; the rest was not.
    values = [v for pair in (await raw_columns(database)).values() for v in pair if v]
    done_first = sum(1 for v in values if _opens(FieldCipher(KEY_B), v))
    assert 0 < done_first < SEALED_VALUES
    resumed = await rotation.run()
    assert resumed.rotated == SEALED_VALUES - done_first
    assert resumed.current == done_first
    assert resumed.complete
    assert_decrypt(FieldCipher(KEY_B), await raw_columns(database))


def _opens(cipher: FieldCipher, sealed: str) -> bool:
    try:
        cipher.decrypt(sealed)
    except DecryptionFailure:
        return False
    return True


@anyio
async def test_replace_never_overwrites_a_concurrent_change(
    base_config: dict[str, Any], database: Database
) -> None:
    await seed(node_config(base_config, KEY_A), database)
    raw = await raw_columns(database)
    spec = ENCRYPTED[0]
    async with database.transaction() as session:
        row = (await SecretQueries(session).page(spec, 0, 1))[0]
        stale = "v0$$not-what-is-stored"
        assert not await SecretQueries(session).replace(
            spec, row.id, "external_registry_username", stale, "v0$$new"
        )
    assert await raw_columns(database) == raw


# --- configuration and cipher ----------------------------------------------------------------


def test_previous_keys_decrypt_but_never_encrypt() -> None:
    old, new = FieldCipher(KEY_A), FieldCipher(KEY_B, [KEY_A, KEY_B])
    assert new.previous_keys == 1  # the current key listed again is ignored
    sealed = old.encrypt("s3cret")
    assert new.decrypt(sealed) == "s3cret"
    fresh = new.reseal(sealed)
    assert fresh is not None
    assert FieldCipher(KEY_B).decrypt(fresh) == "s3cret"
    assert new.reseal(fresh) is None
    with pytest.raises(DecryptionFailure):
        old.decrypt(new.encrypt("x"))
    with pytest.raises(DecryptionFailure):
        FieldCipher(KEY_C, [KEY_B]).reseal(sealed)


def test_previous_keys_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MOORAGE_DATABASE_SECRET_KEY_PREVIOUS", json.dumps([KEY_A]))
    settings = load_settings(None, DATA_DIR=tmp_path, DATABASE_SECRET_KEY=KEY_B)
    assert [k.get_secret_value() for k in settings.DATABASE_SECRET_KEY_PREVIOUS] == [KEY_A]
    assert KEY_A not in repr(settings)
    assert field_cipher(settings).decrypt(FieldCipher(KEY_A).encrypt("x")) == "x"
    monkeypatch.setenv("MOORAGE_DATABASE_SECRET_KEY_PREVIOUS", '[""]')
    with pytest.raises(ConfigError, match="DATABASE_SECRET_KEY_PREVIOUS"):
        load_settings(None, DATA_DIR=tmp_path)


def test_every_encrypted_column_is_rotated() -> None:
    """A new ``.encrypt(`` call site means a new encrypted column: list it in
    db/queries/secrets.ENCRYPTED (or key rotation leaves it under the old key), then here."""
    callers = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "crypto.py" and re.search(r"\w\.encrypt\(", path.read_text())
    )
    assert callers == ["services/mirrors.py"]
    covered = {(spec.model.__tablename__, column) for spec in ENCRYPTED for column in spec.columns}
    assert covered == {
        ("mirror_configs", "external_registry_username"),
        ("mirror_configs", "external_registry_password"),
    }
