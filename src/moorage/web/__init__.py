"""The web UI: static HTML, CSS and JavaScript modules served by `moorage serve` (no build step)."""

from __future__ import annotations

from moorage.web.routes import STATIC_DIR, install_web_ui

__all__ = ["STATIC_DIR", "install_web_ui"]
