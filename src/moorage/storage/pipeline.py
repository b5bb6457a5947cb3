"""Move a byte stream through a blocking sink in a worker thread, overlapping with receipt.

While the event loop receives piece N+1, a thread hashes and writes piece N. Memory stays
bounded at about two pieces per stream, whatever the blob size.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncIterable, Callable

PIECE = 1024 * 1024
_EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="moorage-io")


async def pump(
    chunks: AsyncIterable[bytes], sink: Callable[[bytes], None], piece: int = PIECE
) -> int:
    """Feed ``chunks`` to ``sink`` in pieces of about ``piece`` bytes; return the total.

    If the stream fails or the task is cancelled, this returns only after the piece being
    written has finished, so the caller may safely close or delete what the sink writes to.
    """
    total = 0
    pending: concurrent.futures.Future[None] | None = None
    buffer: list[bytes] = []
    buffered = 0
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            buffer.append(chunk)
            buffered += len(chunk)
            if buffered >= piece:
                data = b"".join(buffer)
                buffer.clear()
                buffered = 0
                if pending is not None:
                    await asyncio.wrap_future(pending)
                pending = _EXECUTOR.submit(sink, data)
                total += len(data)
        if pending is not None:
            await asyncio.wrap_future(pending)
        if buffer:
            data = b"".join(buffer)
            pending = _EXECUTOR.submit(sink, data)
            await asyncio.wrap_future(pending)
            total += len(data)
    finally:
        if pending is not None and not pending.done():
            with contextlib.suppress(BaseException):
                await asyncio.wrap_future(pending)
    return total
