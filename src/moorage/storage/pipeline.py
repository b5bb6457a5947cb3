"""Move a byte stream through a blocking sink in a worker thread, overlapping with receipt.

While the event loop receives piece N+1, a thread hashes and writes piece N. Memory stays
bounded at about two pieces per stream, whatever the blob size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable

PIECE = 1024 * 1024


async def pump(
    chunks: AsyncIterable[bytes], sink: Callable[[bytes], None], piece: int = PIECE
) -> int:
    """Feed ``chunks`` to ``sink`` in pieces of about ``piece`` bytes; return the total."""
    total = 0
    pending: asyncio.Future[None] | None = None
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
                    await pending
                pending = asyncio.ensure_future(asyncio.to_thread(sink, data))
                total += len(data)
        if pending is not None:
            await pending
            pending = None
        if buffer:
            data = b"".join(buffer)
            await asyncio.to_thread(sink, data)
            total += len(data)
    finally:
        if pending is not None and not pending.done():
            # Let the in-flight piece finish before the caller closes the file.
            await asyncio.wait([pending])
    return total
