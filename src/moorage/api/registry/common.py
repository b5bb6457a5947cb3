"""Small helpers shared by the /v2/ handlers: headers, pagination, streaming."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from starlette.requests import Request

from moorage.errors import BlobUploadInvalid

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
MAX_PAGE = 10_000
# ASCII digits only: str.isdigit() also accepts "²" or "①", which int() then refuses.
_DIGITS = re.compile(r"[0-9]+")


def _is_number(text: str) -> bool:
    return _DIGITS.fullmatch(text) is not None


def page_params(request: Request, default: int | None) -> tuple[int | None, str | None]:
    """Parse ``n`` and ``last`` query parameters."""
    raw = request.query_params.get("n")
    last = request.query_params.get("last") or None
    if last is not None and "\x00" in last:
        raise BlobUploadInvalid("invalid last: NUL characters are not allowed")
    if raw is None or raw == "":
        return default, last
    try:
        n = int(raw)
    except ValueError as exc:
        raise BlobUploadInvalid(f"invalid page size n={raw!r}") from exc
    if n < 0:
        raise BlobUploadInvalid(f"invalid page size n={raw!r}")
    return min(n, MAX_PAGE), last


def next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


async def prime(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Fetch the first chunk now, so errors surface before the response starts."""
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""

    async def rest() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return rest()


def parse_content_range(value: str | None) -> tuple[int, int] | None:
    """Parse an upload Content-Range (``start-end``, optionally ``bytes start-end``)."""
    if not value:
        return None
    text = value.strip()
    for prefix in ("bytes=", "bytes "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.split("/", 1)[0]
    start_s, sep, end_s = text.partition("-")
    if not sep or not _is_number(start_s) or not _is_number(end_s):
        raise BlobUploadInvalid(f"invalid Content-Range {value!r}")
    start, end = int(start_s), int(end_s)
    if end < start:
        raise BlobUploadInvalid(f"invalid Content-Range {value!r}")
    return start, end


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` Range (RFC 9110 14.1.2).

    None means "send the whole blob": no header, or one this server ignores (another unit,
    several ranges, bad syntax, or an empty blob). RangeUnsatisfiable means 416.
    """
    if not value or not value.startswith("bytes=") or "," in value or size == 0:
        return None
    start_s, _, end_s = value[len("bytes=") :].strip().partition("-")
    if not (start_s or end_s) or not _is_number(start_s + end_s):
        return None
    if start_s == "":
        suffix = int(end_s)
        if suffix == 0:
            raise RangeUnsatisfiable(size)
        return max(size - suffix, 0), size - 1
    start = int(start_s)
    if end_s and int(end_s) < start:
        return None  # syntactically invalid: ignored, as RFC 9110 requires
    if start >= size:
        raise RangeUnsatisfiable(size)
    end = min(int(end_s), size - 1) if end_s else size - 1
    return start, end


class RangeUnsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for size {size}")
        self.size = size
