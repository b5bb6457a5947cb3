"""Fuzz /api/v1 from its served OpenAPI document with schemathesis, and /v2 with hypothesis
(issue #6 item 3).

A real uvicorn listener on 127.0.0.1 serves the app (its own event loop, in a thread) on the
test's backend, seeded like tests/api (users, organization ``acme``, ``acme/app:latest``, robot
``acme+bot``). Mirror hosts resolve through a stub (no DNS, no upstream is ever contacted: no
mirror worker runs).

/api/v1: every operation of ``/api/v1/openapi.json`` gets schema-conforming (positive) and
schema-violating (negative) requests, as the superuser ``admin``, with path parameters either
generated or pinned to the seeded names so bodies and queries reach the services. /v2: hostile
names, references, digests, Content-Range, Range, Accept, pagination and bodies. Checks: never a
5xx, and every error in the documented shape (problem JSON under /api/v1, the OCI envelope under
/v2). The number of examples per operation is bounded (``examples``), so the whole run is
a few dozen seconds per backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from moorage.app import create_app
from moorage.config import load_settings
from moorage.db.engine import Database
from tests.api.conftest import World, api_config, seed
from tests.conftest import _reset
from tests.hostile.rawasgi import Unsendable, error_shape_problems, send
from tests.hostile.strategies import SCALE, nasty_text

HOST = "127.0.0.1"
PINNED = {
    "namespace": "acme",
    "repository": "app",
    "orgname": "acme",
    "robot_shortname": "bot",
    "shortname": "bot",
    "username": "bob",
    "tag": "latest",
}
# Examples per operation: (mode, pinned path parameters, count).
PLAN = [
    (GenerationMode.POSITIVE, True, 5),
    (GenerationMode.NEGATIVE, True, 4),
    (GenerationMode.POSITIVE, False, 2),
    (GenerationMode.NEGATIVE, False, 2),
]


async def stub_resolver(host: str) -> list[str]:
    """Every upstream host 'resolves' to a documentation address; nothing is contacted."""
    return ["203.0.113.7"]


@dataclass
class Served:
    url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop
    world: World
    stats: dict[str, int] = field(default_factory=dict)

    def run(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world.tokens['admin']}"}


@contextlib.contextmanager
def serve(config: dict[str, Any]) -> Iterator[Served]:
    settings_ = load_settings(None, **config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    url = f"http://{HOST}:{sock.getsockname()[1]}"
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        db = Database(settings_.database_url)
        try:
            await _reset(db)
            app = create_app(settings_, database=db, resolver=stub_resolver)
            config_ = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False)
            server = uvicorn.Server(config_)
            state.update(app=app, server=server, loop=asyncio.get_running_loop())
            task = asyncio.create_task(server.serve(sockets=[sock]))
            deadline = time.monotonic() + 30
            while not server.started and not task.done() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            ready.set()
            await task
        except BaseException as exc:
            state["error"] = exc
            ready.set()
            raise
        finally:
            await db.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    try:
        assert ready.wait(60), "the fuzz server did not start"
        assert "error" not in state, state.get("error")
        assert state["server"].started
        loop: asyncio.AbstractEventLoop = state["loop"]
        app: FastAPI = state["app"]

        async def seeded() -> World:
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://reg.test")
            return await seed(app, client)

        world = asyncio.run_coroutine_threadsafe(seeded(), loop).result(120)
        try:
            yield Served(url, app, loop, world)
        finally:
            asyncio.run_coroutine_threadsafe(world.client.aclose(), loop).result(30)
    finally:
        if "server" in state:
            state["server"].should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def served(base_config: dict[str, Any]) -> Iterator[Served]:
    with serve(api_config(base_config)) as handle:
        yield handle


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never through a proxy: 127.0.0.1 only
    return s


def fuzz_settings(count: int) -> settings:
    return settings(
        max_examples=max(1, int(count * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the failure lists the request
        suppress_health_check=list(HealthCheck),
    )


# Documented 503s: tag changes outside NORMAL state, writes in read-only mode (problem JSON).
DOCUMENTED_503 = (b'"error_type":"repository_state"', b'"error_type":"read_only"')
HEALTH_ROUTES = ("/api/v1/repository/mirror/health", "/api/v1/superuser/mirror/health")


def check_response(method: str, path: str, status: int, body: bytes) -> str | None:
    if status == 503 and path.startswith(HEALTH_ROUTES):
        return None  # documented: 503 while the mirror workers are unhealthy
    if status >= 500 and not (status == 503 and any(m in body for m in DOCUMENTED_503)):
        return f"{status}: {body[:300]!r}"
    return error_shape_problems(path, status, body)


def test_management_api_survives_fuzzing(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/api/v1/openapi.json")
    http = session()
    failures: list[str] = []
    skipped: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    # Destructive operations on the pinned (seeded) resources run last.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    sent = 0
    for operation in operations:
        for mode, pinned, count in PLAN:
            path_parameters = None
            names = {p.name for p in operation.path_parameters}
            if pinned:
                if not names:
                    continue
                path_parameters = {n: PINNED.get(n, "x") for n in names}
                if mode == GenerationMode.NEGATIVE and not _has_inputs(operation):
                    continue  # nothing left to make invalid
            elif mode == GenerationMode.NEGATIVE and not _has_inputs(operation):
                continue  # any string is a valid path segment: random ones run as positive
            try:
                strategy = operation.as_strategy(
                    generation_mode=mode, path_parameters=path_parameters
                )
            except Exception as exc:  # schemathesis cannot negate some operations
                if mode == GenerationMode.NEGATIVE:
                    continue
                raise AssertionError(f"{operation.label}: no strategy: {exc}") from exc

            @fuzz_settings(count)
            @given(case=strategy)
            def run(case: Any) -> None:
                nonlocal sent
                response = case.call(
                    base_url=served.url, session=http, headers=served.admin_headers()
                )
                sent += 1
                problem = check_response(
                    case.method, case.formatted_path, response.status_code, response.content
                )
                if problem:
                    curl = case.as_curl_command(headers=served.admin_headers())
                    failures.append(f"{case.operation.label}: {problem}\n  {curl}")

            try:
                run()
            except Unsatisfiable as exc:  # schemathesis found nothing to make invalid
                skipped.append(f"{operation.label} [{mode.value}]: {exc}")
            _keep_admin_token(served)
    print(f"/api/v1 fuzz: {sent} requests, {len(operations)} operations")
    print("\n".join(skipped[:20]))
    assert sent > 250, (sent, skipped[:20])
    assert not failures, f"{len(failures)} bad responses:\n" + "\n".join(failures[:40])


def _has_inputs(operation: Any) -> bool:
    """Whether the operation takes a body or query parameters (besides its path)."""
    return bool(operation.body) or any(p.location == "query" for p in operation.iter_parameters())


def _keep_admin_token(served: Served) -> None:
    """A fuzzed DELETE /user/tokens/{id} may have revoked the admin's token: make a new one."""
    response = session().get(f"{served.url}/api/v1/user/", headers=served.admin_headers())
    if response.status_code == 200:
        return

    async def fresh() -> str:
        account = await served.world.accounts.get("admin")
        created = await served.world.accounts.create_token(
            account.id,
            "fuzz",
            [
                "repo:admin",
                "repo:create",
                "user:admin",
                "org:admin",
                "super:user",
                "repo:read",
                "repo:write",
                "user:read",
            ],
            None,
        )
        return created.secret

    served.world.tokens["admin"] = served.run(fresh())


# --- /v2 ---------------------------------------------------------------------------------------

segment = st.one_of(
    nasty_text,
    st.sampled_from(["acme", "app", "latest", "..", "%2e%2e", "%00", "%0A", "a%2Fb", "x" * 256]),
)
names = st.one_of(
    st.just("acme/app"),
    st.tuples(segment, segment).map("/".join),
    st.lists(segment, min_size=1, max_size=4).map("/".join),
)
references = st.one_of(st.just("latest"), segment, st.text(alphabet="sha256:0123456789abcdef"))
header_values = st.one_of(
    nasty_text,
    st.sampled_from(
        [
            "0-0",
            "0-99999999999999999999",
            "bytes=0-5",
            "5-1",
            "-1",
            "0-",
            "²-3",
            "bytes=-0",
            "bytes=0-0,1-1",
            "*/*",
            "application/vnd.oci.image.index.v1+json;q=0.5",
        ]
    ),
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            "n=-1",
            "n=99999999999999999999",
            "n=abc",
            "n=1_0",
            "last=%00",
            "last=" + "z" * 3000,
            "n=0",
            "digest=sha256:..",
            "digest=%00",
            "mount=sha256:..&from=../x",
            "artifactType=%00",
            "artifactType=" + "a" * 3000,
            "scope=repository:..:pull",
            "scope=repository:acme/app:pull,push,%00",
        ]
    ),
    st.tuples(
        st.sampled_from(["n", "last", "digest", "mount", "from", "artifactType", "scope"]), segment
    ).map(lambda kv: f"{kv[0]}={kv[1]}"),
)
ROUTES = [
    ("GET", "/v2/{name}/manifests/{reference}"),
    ("HEAD", "/v2/{name}/manifests/{reference}"),
    ("PUT", "/v2/{name}/manifests/{reference}"),
    ("DELETE", "/v2/{name}/manifests/{reference}"),
    ("GET", "/v2/{name}/blobs/{reference}"),
    ("DELETE", "/v2/{name}/blobs/{reference}"),
    ("POST", "/v2/{name}/blobs/uploads/"),
    ("PATCH", "/v2/{name}/blobs/uploads/{upload}"),
    ("PUT", "/v2/{name}/blobs/uploads/{upload}"),
    ("GET", "/v2/{name}/blobs/uploads/{upload}"),
    ("DELETE", "/v2/{name}/blobs/uploads/{upload}"),
    ("GET", "/v2/{name}/tags/list"),
    ("GET", "/v2/{name}/referrers/{reference}"),
    ("GET", "/v2/_catalog"),
    ("GET", "/v2/auth"),
]


@dataclass
class UploadIds:
    live: list[str] = field(default_factory=list)


def test_registry_api_survives_fuzzing(served: Served) -> None:
    uploads = UploadIds()
    failures: list[str] = []
    auth_values = [
        ("authorization", f"Bearer {served.world.tokens['alice']}"),
        ("authorization", "Basic JG9hdXRodG9rZW46"),  # "$oauthtoken:" and nothing
    ]

    async def open_upload() -> str:
        response = await send(served.app, "POST", "/v2/acme/app/blobs/uploads/", [auth_values[0]])
        assert response.status == 202, response.text
        return response.headers["location"].rsplit("/", 1)[1]

    for _ in range(3):
        uploads.live.append(served.run(open_upload()))

    @fuzz_settings(400)
    @given(
        route=st.sampled_from(ROUTES),
        name=names,
        reference=references,
        upload=st.one_of(st.sampled_from(uploads.live), segment),
        query=queries,
        headers=st.lists(
            st.tuples(
                st.sampled_from(
                    ["content-range", "range", "accept", "content-type", "authorization"]
                ),
                header_values,
            ),
            max_size=3,
        ),
        body=st.one_of(st.just(b""), st.binary(max_size=64), st.sampled_from([b"{}", b"[" * 2000])),
        authenticated=st.booleans(),
    )
    def run(
        route: tuple[str, str],
        name: str,
        reference: str,
        upload: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        authenticated: bool,
    ) -> None:
        method, template = route
        path = template.format(name=name, reference=reference, upload=upload)
        target = f"{path}?{query}" if query else path
        sent_headers = list(headers)
        if authenticated and not any(k == "authorization" for k, _ in sent_headers):
            sent_headers.append(auth_values[0])
        try:
            response = served.run(send(served.app, method, target, sent_headers, body), 30)
        except Unsendable:
            return  # uvicorn itself would refuse it
        problem = check_response(method, target, response.status, response.body)
        if problem and method != "HEAD":
            failures.append(
                f"{method} {target!r} headers={sent_headers!r} body={body[:40]!r}: {problem}"
            )

    run()
    assert not failures, f"{len(failures)} bad responses:\n" + "\n".join(failures[:40])
