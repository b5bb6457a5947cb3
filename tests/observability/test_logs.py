"""Structured logs: JSON lines carrying the request id, in process and from `moorage serve`."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from moorage.app import create_app
from moorage.config import load_settings
from moorage.db.engine import Database
from moorage.observability.logs import (
    ACCESS_LOGGER,
    ContextFilter,
    JsonFormatter,
    bind_log_context,
    current_request_id,
)
from moorage.storage.factory import build_driver
from tests.observability.test_health import UnwritableStorage
from tests.support.server import run_moorage

pytestmark = pytest.mark.anyio


@contextlib.contextmanager
def json_log() -> Iterator[io.StringIO]:
    """Capture every record as JSON lines, formatted the way LOG_FORMAT=json does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root, access = logging.getLogger(), logging.getLogger(ACCESS_LOGGER)
    levels = (root.level, access.level)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    access.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        access.setLevel(levels[1])


def entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_formatter_emits_context_extras_and_exceptions() -> None:
    with json_log() as stream:
        log = logging.getLogger("moorage.test")
        with bind_log_context(request_id="req-1", mirror="ns/app"):
            assert current_request_id() == "req-1"
            log.warning("copied %d tags", 3, extra={"tags": 3})
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")
        assert current_request_id() is None
        log.warning("outside")
    first, second, third = entries(stream)
    assert first["message"] == "copied 3 tags"
    assert (first["level"], first["logger"]) == ("WARNING", "moorage.test")
    assert (first["request_id"], first["mirror"], first["tags"]) == ("req-1", "ns/app", 3)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", first["time"])
    assert "ValueError: boom" in second["exception"]
    assert "request_id" not in third


@pytest.mark.parametrize("backend", ["sqlite-fs"])
async def test_request_id_is_echoed_generated_and_logged(
    base_config: dict[str, Any], database: Database
) -> None:
    settings = load_settings(None, **base_config)
    driver = build_driver(settings)
    app = create_app(settings, database=database, storage=UnwritableStorage(driver))  # type: ignore[arg-type]
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://r.test") as client:
                with json_log() as stream:
                    given = await client.get(
                        "/health/instance", headers={"X-Request-ID": "lb-7f3a:1"}
                    )
                    fresh = await client.get("/v2/")
                    refused = await client.get(
                        "/v2/", headers={"X-Request-ID": "no spaces or\tcontrol chars"}
                    )
    finally:
        await driver.close()

    assert given.headers["X-Request-ID"] == "lb-7f3a:1"
    generated = fresh.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    replaced = refused.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert replaced != generated

    lines = entries(stream)
    # A line logged deep inside the request (the failed storage probe) carries its id.
    (probe,) = [e for e in lines if e["logger"] == "moorage.services.health"]
    assert probe["request_id"] == "lb-7f3a:1"
    assert "storage failed" in probe["message"]
    access = [e for e in lines if e["logger"] == ACCESS_LOGGER]
    # Load balancer probes (/health/*, /metrics) log their access lines at DEBUG only.
    assert [(e["request_id"], e["route"], e["status"]) for e in access] == [
        (generated, "/v2/", 200),
        (replaced, "/v2/", 200),
    ]
    assert access[0]["method"] == "GET"
    assert access[0]["duration_ms"] >= 0


@pytest.mark.parametrize("backend", ["sqlite-fs"])
def test_serve_writes_json_lines_with_request_ids(
    base_config: dict[str, Any], tmp_path: Path
) -> None:
    config = {**base_config, "LOG_FORMAT": "json", "REPO_MIRROR_WORKER": False}
    with run_moorage(config, tmp_path / "serve") as server:
        response = httpx.get(
            f"{server.url}/v2/", headers={"X-Request-ID": "trace-42"}, trust_env=False
        )
        assert response.headers["X-Request-ID"] == "trace-42"
        log_text = server.log()
    lines = [line for line in log_text.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("serving on" in e["message"] for e in parsed)
    assert any(e["logger"].startswith("uvicorn") for e in parsed)
    (access,) = [e for e in parsed if e.get("request_id") == "trace-42"]
    assert (access["logger"], access["route"], access["status"]) == (ACCESS_LOGGER, "/v2/", 200)
