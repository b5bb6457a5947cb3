"""Log set-up for `moorage serve` and `moorage worker`: text lines or one JSON object per line.

Context fields (the request id of an HTTP request, the mirror a worker is syncing) live in a
``contextvars.ContextVar``: they follow the request or sync through ``await`` and into the tasks
it creates, and a logging filter copies them onto every record, so no call site passes them.

    with bind_log_context(request_id="..."):
        log.info("...")  # {"message": "...", "request_id": "...", ...}
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "moorage.access"

_context: ContextVar[Mapping[str, Any]] = ContextVar(
    "moorage_log_context", default=MappingProxyType({})
)

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is emitted.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "context", "taskName"}
)


def log_context() -> Mapping[str, Any]:
    """The fields bound to the current request or task."""
    return _context.get()


def current_request_id() -> str | None:
    value = _context.get().get("request_id")
    return value if isinstance(value, str) else None


@contextlib.contextmanager
def bind_log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log record emitted inside the block (and tasks it starts)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record as ``record.context``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.context = dict(_context.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "context", None)
        entry.update(context if isinstance(context, dict) else _context.get())
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Send every log record to stderr in ``fmt``; replaces any handler set up before.

    Access lines (logger ``moorage.access``, one per HTTP request) are written only in the json
    format: text logs stay as terse as before.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.NOTSET if fmt == "json" else logging.WARNING)
