"""Render docs/configuration.md from the Settings model (a test keeps the file current)."""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticUndefined

from moorage.config import Settings

HEADER = """# Configuration

Generated from `moorage.config.Settings` by `moorage config-docs`; do not edit by hand.

Keys go in `config.yaml` (path from `--config` or `MOORAGE_CONFIG`). Every key can also be set
with an environment variable `MOORAGE_<KEY>` (lists and mappings as JSON), which wins over the
file; a command-line flag (`serve --host/--port`, `worker --metrics-host/--metrics-port`) wins
over both. A bad value stops the start with a message naming the key. With no configuration at all,
Moorage runs on SQLite and local storage inside `DATA_DIR` and generates its secrets there.

| key | type | default | description |
|---|---|---|---|
"""


def _default(field: Any) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"
    if field.default is PydanticUndefined or field.default is None:
        return "—"
    value = field.default
    return f"`{value}`" if not isinstance(value, str) else f"`{value!r}`"


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        kind = field.annotation
        text = kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", "")
        annotation = text.replace("|", "\\|")
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | `{annotation}` | {_default(field)} | {description} |")
    return HEADER + "\n".join(rows) + "\n"
