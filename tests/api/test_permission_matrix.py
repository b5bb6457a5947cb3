"""Who may call what: every /api/v1 route, every kind of caller (Quay's test_security matrix).

The routes are enumerated from the app, so a new route without an entry in MATRIX fails
``test_every_route_has_a_matrix_entry``. Callers:

- ``anonymous``: no credentials → 401;
- ``outsider`` (eve): authenticated, no access to ``acme`` → 403;
- ``reader`` (rita): member of ``acme`` with read permission on ``acme/app`` → 403 on write
  and admin routes, allowed on read routes;
- ``writer`` (bob): write permission on ``acme/app`` → allowed on tag changes only;
- ``scopeless``: alice's token (admin's for superuser routes) without the scope the route
  needs → 403;
- ``owner`` (alice, admin of ``acme``) and ``superuser`` (admin) → allowed: the handler runs
  (2xx, or 404 for a missing object; a few routes list other statuses they may answer).

Deliberately anonymous routes (kind "public"): the OpenAPI document and its UI, first-user
initialization (404 unless FEATURE_USER_INITIALIZE), the web UI's sign-in, sign-out and session
routes, GET /organization/{org} (public in Quay; e-mail only for admins) and GET /repository
(public repositories only). Repository reads (GET /repository/{ns}/{repo}, GET .../tag/) are
anonymous for public repositories; the matrix uses the private ``acme/app``, where they need read
permission.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI

from moorage.auth import scopes as sc
from moorage.db.models import AccountKind, OrgRole, RepoRole, RepositoryState, Visibility
from moorage.errors import NotFound
from moorage.services.audit import Actor
from tests.api.conftest import USERS, World, bearer

pytestmark = pytest.mark.anyio

REPO = "/api/v1/repository/{namespace}/{repository}"
ORG_ROBOT = "/api/v1/organization/{orgname}/robots/{robot_shortname}"
USER_ROBOT = "/api/v1/user/robots/{robot_shortname}"
PERM = f"{REPO}/permissions/user/{{username}}"
MIRROR = f"{REPO}/mirror"
NOTIFICATION = f"{REPO}/notification"
# An unknown notification: GET answers 404, the other routes Quay's 400.
NO_NOTIFICATION = {"uuid": "00000000-0000-0000-0000-000000000000"}


@dataclass(frozen=True)
class Rule:
    # public | self | repo_read | repo_write | repo_admin | org_admin | create_repo | superuser
    kind: str
    scopes: tuple[str, ...] = ()  # any one of these is enough; () = no scope needed
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    also_ok: frozenset[int] = frozenset()  # statuses besides 2xx/404 that mean "allowed"


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    # Every caller signs in as alice with a wrong password: the per-user login throttle
    # (tests/security/test_login_throttle.py) would answer 429 from the sixth on.
    return {"LOGIN_THROTTLE_USER_FAILURES": 0}


NEW = {"robot_shortname": "new_{who}"}
MATRIX: dict[tuple[str, str], Rule] = {
    ("GET", "/api/v1/openapi.json"): Rule("public"),
    ("GET", "/api/v1/docs"): Rule("public"),
    ("POST", "/api/v1/user/initialize"): Rule(
        "public", body={"username": "first", "password": "long enough password"}
    ),
    # browser sessions of the web UI: signing in is anonymous by nature. A wrong password
    # (403) shows the handler ran without leaving a session cookie in the shared client.
    ("POST", "/api/v1/signin"): Rule(
        "public", body={"username": "alice", "password": "wrong"}, also_ok=frozenset({403})
    ),
    ("POST", "/api/v1/signout"): Rule("public"),
    ("GET", "/api/v1/session"): Rule("public"),
    ("GET", "/api/v1/user/"): Rule("self", (sc.USER_READ,)),
    ("GET", "/api/v1/user/tokens"): Rule("self", (sc.USER_READ,)),
    ("POST", "/api/v1/user/tokens"): Rule(
        "self", (sc.USER_ADMIN,), body={"name": "t", "scopes": [sc.REPO_READ]}
    ),
    ("DELETE", "/api/v1/user/tokens/{token_id}"): Rule("self", (sc.USER_ADMIN,)),
    # robots
    ("GET", "/api/v1/organization/{orgname}/robots"): Rule("org_admin", (sc.ORG_ADMIN,)),
    ("GET", ORG_ROBOT): Rule("org_admin", (sc.ORG_ADMIN,)),
    ("PUT", ORG_ROBOT): Rule("org_admin", (sc.ORG_ADMIN,), params=NEW),
    ("DELETE", ORG_ROBOT): Rule("org_admin", (sc.ORG_ADMIN,)),
    ("POST", f"{ORG_ROBOT}/regenerate"): Rule("org_admin", (sc.ORG_ADMIN,)),
    ("GET", "/api/v1/user/robots"): Rule("self", (sc.USER_ADMIN,)),
    ("GET", USER_ROBOT): Rule("self", (sc.USER_ADMIN,)),
    ("PUT", USER_ROBOT): Rule("self", (sc.USER_ADMIN,), params=NEW),
    ("DELETE", USER_ROBOT): Rule("self", (sc.USER_ADMIN,)),
    ("POST", f"{USER_ROBOT}/regenerate"): Rule("self", (sc.USER_ADMIN,)),
    # organizations
    ("POST", "/api/v1/organization/"): Rule(
        "self", (sc.USER_ADMIN, sc.ORG_ADMIN), body={"name": "org-{who}"}
    ),
    ("GET", "/api/v1/organization/{orgname}"): Rule("public"),
    ("GET", "/api/v1/organization/{orgname}/logs"): Rule("org_admin", (sc.ORG_ADMIN,)),
    # tags
    ("GET", f"{REPO}/tag/"): Rule("repo_read", (sc.REPO_READ,)),
    ("PUT", f"{REPO}/tag/{{tag}}"): Rule(
        "repo_write",
        (sc.REPO_WRITE,),
        body={"manifest_digest": "{digest}"},
        params={"tag": "t-{who}"},
    ),
    ("DELETE", f"{REPO}/tag/{{tag}}"): Rule("repo_write", (sc.REPO_WRITE,)),
    # permissions and logs
    ("GET", f"{REPO}/permissions/user/"): Rule("repo_admin", (sc.REPO_ADMIN,)),
    ("GET", PERM): Rule("repo_admin", (sc.REPO_ADMIN,)),
    ("PUT", PERM): Rule("repo_admin", (sc.REPO_ADMIN,), body={"role": "write"}),
    ("DELETE", PERM): Rule("repo_admin", (sc.REPO_ADMIN,)),
    ("GET", f"{REPO}/logs"): Rule("repo_admin", (sc.REPO_ADMIN,)),
    # mirror configuration (a complete configuration needs DNS: 400 also means "allowed")
    ("GET", MIRROR): Rule("repo_admin", (sc.REPO_ADMIN,)),
    ("POST", MIRROR): Rule("repo_admin", (sc.REPO_ADMIN,), body={}, also_ok=frozenset({400})),
    ("PUT", MIRROR): Rule("repo_admin", (sc.REPO_ADMIN,), body={}, also_ok=frozenset({400})),
    ("POST", f"{MIRROR}/sync-now"): Rule("repo_admin", (sc.REPO_ADMIN,)),
    ("POST", f"{MIRROR}/sync-cancel"): Rule("repo_admin", (sc.REPO_ADMIN,)),
    ("GET", f"{MIRROR}/runs"): Rule("repo_admin", (sc.REPO_ADMIN,)),
    # repository notifications (a global IP literal: created without any DNS lookup)
    ("GET", f"{NOTIFICATION}/"): Rule("repo_admin", (sc.REPO_ADMIN,)),
    ("POST", f"{NOTIFICATION}/"): Rule(
        "repo_admin",
        (sc.REPO_ADMIN,),
        body={
            "event": "repo_mirror_sync_failed",
            "method": "webhook",
            "config": {"url": "https://93.184.215.14/hook"},
            "eventConfig": {},
        },
    ),
    ("GET", f"{NOTIFICATION}/{{uuid}}"): Rule(
        "repo_admin", (sc.REPO_ADMIN,), params=NO_NOTIFICATION
    ),
    ("DELETE", f"{NOTIFICATION}/{{uuid}}"): Rule(
        "repo_admin", (sc.REPO_ADMIN,), params=NO_NOTIFICATION, also_ok=frozenset({400})
    ),
    ("POST", f"{NOTIFICATION}/{{uuid}}"): Rule(
        "repo_admin", (sc.REPO_ADMIN,), params=NO_NOTIFICATION, also_ok=frozenset({400})
    ),
    ("POST", f"{NOTIFICATION}/{{uuid}}/test"): Rule(
        "repo_admin", (sc.REPO_ADMIN,), params=NO_NOTIFICATION, also_ok=frozenset({400})
    ),
    # repositories
    ("POST", "/api/v1/repository"): Rule(
        "create_repo",
        (sc.REPO_CREATE,),
        body={"repository": "new-{who}", "namespace": "acme", "visibility": "private"},
    ),
    ("GET", "/api/v1/repository"): Rule("public", (sc.REPO_READ,)),
    ("GET", REPO): Rule("repo_read", (sc.REPO_READ,)),
    ("DELETE", REPO): Rule("repo_admin", (sc.REPO_ADMIN,)),
    ("POST", f"{REPO}/changevisibility"): Rule(
        "repo_admin", (sc.REPO_ADMIN,), body={"visibility": "private"}
    ),
    ("PUT", f"{REPO}/changestate"): Rule("repo_admin", (sc.REPO_ADMIN,), body={"state": "NORMAL"}),
    # mirror health (503 = the report says unhealthy) and capabilities
    ("GET", "/api/v1/repository/mirror/health"): Rule(
        "superuser", (sc.SUPER_USER,), also_ok=frozenset({503})
    ),
    ("GET", "/api/v1/superuser/mirror/health"): Rule(
        "superuser", (sc.SUPER_USER,), also_ok=frozenset({503})
    ),
    ("GET", "/api/v1/registry/capabilities"): Rule("public"),
}

DEFAULT_PARAMS = {
    "namespace": "acme",
    "repository": "app",
    "orgname": "acme",
    "robot_shortname": "bot",
    "tag": "latest",
    "username": "bob",
    "token_id": "999999",
    **NO_NOTIFICATION,
}
CALLERS = ("anonymous", "outsider", "reader", "writer", "scopeless", "owner", "superuser")
USER_OF = {
    "outsider": "eve",
    "reader": "rita",
    "writer": "bob",
    "scopeless": "alice",
    "owner": "alice",
    "superuser": "admin",
}
ALLOWED: dict[str, set[str]] = {  # kind -> callers allowed (the others get 401 or 403)
    "public": {"anonymous", "outsider", "reader", "writer", "scopeless", "owner", "superuser"},
    "self": {"outsider", "reader", "writer", "scopeless", "owner", "superuser"},
    "repo_read": {"reader", "writer", "scopeless", "owner", "superuser"},
    "repo_write": {"writer", "scopeless", "owner", "superuser"},
    "repo_admin": {"scopeless", "owner", "superuser"},
    "org_admin": {"scopeless", "owner", "superuser"},
    "create_repo": {"scopeless", "owner", "superuser"},
    "superuser": {"superuser"},
}
IMPLIED_BY = {
    sc.REPO_READ: {sc.REPO_WRITE, sc.REPO_ADMIN},
    sc.REPO_WRITE: {sc.REPO_ADMIN},
    sc.USER_READ: {sc.USER_ADMIN},
}


def api_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    try:  # FastAPI >= 0.13x keeps included routers lazily; this flattens them.
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:  # pragma: no cover - older FastAPI
        routes = list(app.routes)
    for route in routes:
        path = getattr(route, "path", None) or ""
        methods = getattr(route, "methods", None) or getattr(
            getattr(route, "original_route", None), "methods", None
        )
        if path.startswith("/api/v1") and methods:
            for method in sorted(set(methods) - {"HEAD"}):
                yield method, path


def fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    return value


def scopes_without(needed: tuple[str, ...]) -> list[str]:
    drop = set(needed) | {sc.SUPER_USER}  # a superuser's token acts as a plain user without it
    for scope in needed:
        drop |= IMPLIED_BY.get(scope, set())
    return [s for s in sc.ALL_SCOPES if s not in drop]


async def prepare(world: World) -> None:
    """Recreate whatever an allowed (possibly destructive) call may have removed or changed."""
    system = Actor.system()
    repos = world.management.repositories
    try:
        repo = await repos.get("acme", "app")
    except NotFound:
        await world.create_repo("acme/app")
        world.digest = await world.push("acme/app", "latest")
        repo = await repos.get("acme", "app")
    if repo.state != RepositoryState.NORMAL:
        await repos.set_state("acme", "app", RepositoryState.NORMAL, system)
    if repo.visibility != Visibility.PRIVATE:
        await repos.set_visibility("acme", "app", Visibility.PRIVATE, system)
    await world.management.tags.change("acme", "app", "latest", world.digest, system)
    perms = {p.name: p.role for p in await world.management.permissions.list_users("acme", "app")}
    for user, role in (("rita", RepoRole.READ), ("bob", RepoRole.WRITE)):
        if perms.get(user) != role:
            await world.grant("acme/app", user, role)
    for namespace in ("acme", *USERS):
        kind = AccountKind.ORGANIZATION if namespace == "acme" else AccountKind.USER
        try:
            await world.management.robots.get(namespace, kind, "bot")
        except NotFound:
            await world.accounts.create_robot(namespace, "bot", None, system)


async def test_every_route_has_a_matrix_entry(api_app: FastAPI) -> None:
    routes = set(api_routes(api_app))
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"/api/v1 routes without a permission-matrix entry: {missing}"
    assert not stale, f"matrix entries for routes that do not exist: {stale}"


async def test_permission_matrix(world: World) -> None:
    await world.add_member("acme", "rita", OrgRole.MEMBER)
    failures: list[str] = []
    for (method, template), rule in sorted(MATRIX.items()):
        for caller in CALLERS:
            user = USER_OF.get(caller)
            allowed = caller in ALLOWED[rule.kind]
            if caller == "scopeless":
                if not rule.scopes:
                    continue
                allowed = False
                # The caller who would be allowed with the scope: alice, or admin for superuser
                # routes.
                owner = "admin" if rule.kind == "superuser" else "alice"
                headers = bearer(await world.token(owner, scopes_without(rule.scopes)))
            else:
                headers = world.auth(user) if user else {}
            if allowed:
                await prepare(world)
            values = {"who": caller, "digest": world.digest}
            params = {**DEFAULT_PARAMS, **{k: fill(v, values) for k, v in rule.params.items()}}
            path = template.format(**params)
            body = fill(rule.body, values)
            response = await world.client.request(
                method, path, headers=headers, **({"json": body} if body is not None else {})
            )
            status = response.status_code
            if allowed:
                ok = 200 <= status < 300 or status == 404 or status in rule.also_ok
                expected = "2xx/404" + "".join(f"/{s}" for s in sorted(rule.also_ok))
            else:
                wanted = 401 if caller == "anonymous" else 403
                ok = status == wanted
                expected = str(wanted)
            if not ok:
                failures.append(
                    f"{method} {template} as {caller}: {status} (want {expected}) "
                    f"{response.text[:120]}"
                )
    assert not failures, "\n".join(failures)
