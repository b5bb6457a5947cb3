"""Tokens and secrets (issue #6 item 4): registry JWTs are checked for signature, expiry,
audience, issuer and algorithm, never grant more than they name, and every comparison of a
secret is constant-time (checked at run time and by scanning the source)."""

from __future__ import annotations

import ast
import base64
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from moorage.auth import passwords, sessions, tokens
from moorage.services import accounts as accounts_module
from tests.api.conftest import PASSWORD, World, basic, bearer

pytestmark = pytest.mark.anyio
AUDIENCE = "reg.test"
CHALLENGE = 'Bearer realm="http://reg.test/v2/auth",service="reg.test"'
SRC = Path(__file__).resolve().parents[2] / "src" / "moorage"


def secret_key(world: World) -> str:
    return str(world.app.state.settings.secret("SECRET_KEY"))


def claims(sub: str, access: list[dict[str, Any]], **override: Any) -> dict[str, Any]:
    now = int(time.time())
    value: dict[str, Any] = {
        "iss": tokens.ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "jti": "x",
        "access": access,
        "context": {"kind": "user", "account_id": None, "superuser": False},
    }
    value.update(override)
    return {k: v for k, v in value.items() if v is not None}


def pull_push(repo: str) -> list[dict[str, Any]]:
    return [{"type": "repository", "name": repo, "actions": ["pull", "push", "delete", "*"]}]


def sign(world: World, body: dict[str, Any], key: bytes | str | None = None) -> str:
    return jwt.encode(body, key or tokens._key(secret_key(world)), algorithm="HS256")


def unsigned(body: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(body)}."


async def token_for(world: World, user: str, scope: str) -> str:
    response = await world.client.get(
        "/v2/auth", params={"service": AUDIENCE, "scope": scope}, headers=basic(user, PASSWORD)
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def assert_challenged(response: httpx.Response, scope: str | None = None) -> None:
    assert response.status_code == 401, response.text
    expected = CHALLENGE + (f',scope="{scope}"' if scope else "")
    assert response.headers["WWW-Authenticate"] == expected
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


# --- JWTs -----------------------------------------------------------------------------------------


FORGERIES = (
    "wrong key",
    "raw secret key",
    "expired",
    "not yet valid",
    "wrong audience",
    "no audience",
    "wrong issuer",
    "no expiry",
    "alg none",
    "alg NONE",
    "tampered payload",
    "garbage",
)


def forge(world: World, case: str) -> str:
    now = int(time.time())
    body = claims("alice", pull_push("acme/app"))
    none_upper = base64.urlsafe_b64encode(b'{"alg":"NONE","typ":"JWT"}').rstrip(b"=").decode()
    makers = {
        "wrong key": lambda: sign(world, body, b"0" * 32),
        "raw secret key": lambda: sign(world, body, secret_key(world)),
        "expired": lambda: sign(world, {**body, "exp": now - 60, "iat": now - 400}),
        "not yet valid": lambda: sign(world, {**body, "nbf": now + 600}),
        "wrong audience": lambda: sign(world, {**body, "aud": "other.example"}),
        "no audience": lambda: sign(world, claims("alice", pull_push("acme/app"), aud=None)),
        "wrong issuer": lambda: sign(world, {**body, "iss": "someone-else"}),
        "no expiry": lambda: sign(world, claims("alice", pull_push("acme/app"), exp=None)),
        "alg none": lambda: unsigned(body),
        "alg NONE": lambda: none_upper + "." + unsigned(body).split(".", 1)[1],
        "tampered payload": lambda: _tampered(world),
        "garbage": lambda: "a.b.c",
    }
    return makers[case]()


async def test_forged_tokens_are_refused(world: World) -> None:
    # The control: each forgery below differs from this genuine token in one thing.
    genuine = sign(world, claims("alice", pull_push("acme/app")))
    response = await world.client.get("/v2/acme/app/manifests/latest", headers=bearer(genuine))
    assert response.status_code == 200, response.text
    # Signed by the registry with a superuser context, a token still opens only what it names.
    context = {"kind": "user", "account_id": 5, "superuser": True}
    boss = sign(world, claims("admin", [], context=context))
    assert_challenged(
        await world.client.get("/v2/acme/app/manifests/latest", headers=bearer(boss)),
        "repository:acme/app:pull",
    )
    for case in FORGERIES:
        token = forge(world, case)
        for path in ("/v2/", "/v2/acme/app/manifests/latest", "/v2/acme/app/tags/list"):
            response = await world.client.get(path, headers=bearer(token))
            assert response.status_code == 401, (case, path, response.text)
            assert_challenged(response)


def _tampered(world: World) -> str:
    """eve's genuine (empty) token with a push grant spliced into its payload."""
    genuine = sign(world, claims("eve", []))
    header, _, signature = genuine.split(".")
    payload = base64.urlsafe_b64encode(
        json.dumps(claims("eve", pull_push("acme/app"))).encode()
    ).rstrip(b"=")
    return f"{header}.{payload.decode()}.{signature}"


async def test_tokens_grant_no_more_than_they_name(world: World) -> None:
    client = world.client
    # eve asks for everything on alice's private repository and gets nothing.
    eve = await token_for(world, "eve", "repository:acme/app:pull,push,delete,*")
    assert jwt.decode(eve, options={"verify_signature": False})["access"][0]["actions"] == []
    assert_challenged(
        await client.get("/v2/acme/app/manifests/latest", headers=bearer(eve)),
        "repository:acme/app:pull",
    )
    # rita may read: her token carries pull only, and a push is challenged for push.
    rita = await token_for(world, "rita", "repository:acme/app:pull,push")
    assert (await client.get("/v2/acme/app/tags/list", headers=bearer(rita))).status_code == 200
    assert_challenged(
        await client.post("/v2/acme/app/blobs/uploads/", headers=bearer(rita)),
        "repository:acme/app:pull,push",
    )
    # A token names repositories: alice's token for acme/app does not open acme/other.
    alice = await token_for(world, "alice", "repository:acme/app:pull,push")
    assert_challenged(
        await client.get("/v2/acme/other/tags/list", headers=bearer(alice)),
        "repository:acme/other:pull",
    )
    # Registry tokens are not credentials of the management API.
    response = await client.get("/api/v1/user/", headers=bearer(alice))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="moorage"'
    assert response.json()["error_type"] == "invalid_token"
    # The catalog lists only what the token's holder may pull.
    listed = await client.get("/v2/_catalog", headers=bearer(eve))
    assert listed.status_code == 200
    assert listed.json()["repositories"] == []


async def test_writes_are_rechecked_after_a_permission_is_revoked(world: World) -> None:
    bob = await token_for(world, "bob", "repository:acme/app:pull,push")
    granted = jwt.decode(bob, options={"verify_signature": False})["access"][0]["actions"]
    assert granted == ["pull", "push"]
    await world.management.permissions.delete("acme", "app", "bob", await world.actor("alice"))
    assert_challenged(
        await world.client.post("/v2/acme/app/blobs/uploads/", headers=bearer(bob)),
        "repository:acme/app:pull,push",
    )


# --- constant-time comparisons --------------------------------------------------------------------


@pytest.fixture
def compare_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def test_session_mac_csrf_and_token_hashes_use_compare_digest(
    compare_spy: list[tuple[Any, Any]],
) -> None:
    now = int(time.time())
    cookie = sessions.issue("k", 1, "alice", "fp", now)
    assert sessions.verify("k", cookie, "fp", now) is not None
    assert sessions.verify("k", cookie[:-1] + "A", "fp", now) is None
    assert sessions.csrf_valid("k", cookie, sessions.csrf_token("k", cookie))
    assert not sessions.csrf_valid("k", cookie, "nope")
    assert passwords.token_matches(passwords.token_hash("t"), "t")
    assert not passwords.token_matches(passwords.token_hash("t"), "u")
    assert len(compare_spy) == 6


async def test_robot_logins_cost_the_same_whether_or_not_the_robot_exists(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing robot must not answer faster (no argon2) or slower than a wrong token."""
    seen: list[str] = []
    real_matches = accounts_module.token_matches
    real_verify = accounts_module.verify_password

    def matches(stored: str | None, token: str) -> bool:
        seen.append("compare")
        return real_matches(stored, token)

    async def verify(stored: str | None, password: str) -> bool:
        seen.append("argon2")
        return await real_verify(stored, password)

    monkeypatch.setattr(accounts_module, "token_matches", matches)
    monkeypatch.setattr(accounts_module, "verify_password", verify)
    paths = {}
    for name in ("acme+bot", "acme+ghost", "ghost+bot", "acme+"):
        seen.clear()
        assert await world.accounts.authenticate(name, "wrong token") is None
        paths[name] = list(seen)
    assert all(path == ["compare"] for path in paths.values()), paths
    seen.clear()
    assert await world.accounts.authenticate("acme+bot", world.robot_token) is not None
    assert seen == ["compare"]
    # Users: unknown names cost an argon2 hash, as a wrong password does.
    for name in ("alice", "nobody", "acme", "x" * 300, "ali\x00ce"):
        seen.clear()
        assert await world.accounts.authenticate(name, "wrong") is None
        assert seen == ["argon2"], name


# Comparisons with == / != whose operands name a secret. Each allowed one says why it is safe.
SECRET_NAME = re.compile(r"(token|secret|password|passwd|csrf|mac|signature|hmac|cookie)", re.I)
ALLOWED = {
    # SQL: look an access token up by the SHA-256 of the presented value. An attacker cannot
    # choose hash prefixes, so index timing reveals nothing usable (then compared exactly).
    ("db/queries/accounts.py", "AccessToken.token_hash == token_hash"),
}


def _terminal(node: ast.AST) -> str:
    """The name an operand ends in: ``AccessToken.token_hash`` → token_hash, ``f(x)`` → f."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _terminal(node.func)
    if isinstance(node, ast.Subscript):
        return _terminal(node.value)
    return ""


def test_no_secret_is_compared_with_equals() -> None:
    offending = []
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            # Comparing with a literal (None, a number, a fixed kind) is not a secret check.
            if any(isinstance(o, ast.Constant) for o in operands):
                continue
            names = {_terminal(o) for o in operands}
            if not any(SECRET_NAME.search(n) for n in names):
                continue
            where = (path.relative_to(SRC).as_posix(), ast.unparse(node))
            if where not in ALLOWED and not _id_like(names):
                offending.append(f"{where[0]}:{node.lineno}: {where[1]}")
    assert not offending, "use hmac.compare_digest:\n" + "\n".join(offending)


def _id_like(names: set[str]) -> bool:
    """token_id, token_name, *_kind ... identify a secret's row, they are not the secret."""
    secretive = {n for n in names if SECRET_NAME.search(n)}
    return all(re.search(r"(_id|_ids|_name|_kind|_prefix|_count|s)$", n) for n in secretive)
