"""Mount the web UI: ``/`` and ``/ui/...`` answer index.html; assets live under ``/ui/static/``.

The UI is a single page that routes on the client (History API) and talks only to /api/v1,
exactly like scripts do. Every page carries a strict Content-Security-Policy: scripts, styles
and connections only from this origin, no inline code, no framing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
ASSET_PREFIX = "/ui/static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


async def index(request: Request) -> Response:
    """The single page; the client-side router shows the view named by the path."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


class UiStaticFiles(StaticFiles):
    """StaticFiles with nosniff and revalidation (the files change with each release)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def install_web_ui(app: FastAPI) -> None:
    """Add the UI's routes to ``app`` (after the APIs, so /v2/, /api/v1 and /metrics win)."""
    app.mount(ASSET_PREFIX, UiStaticFiles(directory=STATIC_DIR), name="ui-static")
    app.add_route("/", index, methods=["GET"], include_in_schema=False)
    app.add_route("/ui", index, methods=["GET"], include_in_schema=False)
    app.add_route("/ui/{path:path}", index, methods=["GET"], include_in_schema=False)
