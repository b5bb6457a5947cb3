"""The StorageDriver contract, run against every driver (see conftest.driver).

A few S3-only checks (multipart layout, key prefix, copy splitting) sit at the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import cache
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from moorage.errors import ConfigError, StorageKeyInvalid, StorageNotFound
from moorage.storage.base import READ_PIECE, StorageDriver
from moorage.storage.filesystem import TMP_DIR, FilesystemDriver
from moorage.storage.s3 import MIN_PART, S3Driver
from tests.support.s3server import s3_storage_params

from .conftest import TEST_PART_SIZE

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
UPLOAD_ID = "0b5e3f38-3c2e-4a55-9a55-6f0d3f0a3b11"
OTHER_UPLOAD_ID = "5f2b1c6e-8d4a-4f3e-b1a2-9c8d7e6f5a4b"


@cache
def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(f"{size}-{seed}").randbytes(size)


async def chunked(data: bytes, size: int = 200_003) -> AsyncIterator[bytes]:
    """Odd-sized chunks, so nothing lines up with pieces or parts by accident."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await anyio.lowlevel.checkpoint()


async def read_all(
    driver: StorageDriver, key: str, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([piece async for piece in driver.read(key, offset, length)])


async def listed(driver: StorageDriver, prefix: str) -> set[str]:
    return {key async for key in driver.list(prefix)}


async def multipart_uploads_in_progress(driver: StorageDriver) -> int:
    if not isinstance(driver, S3Driver):
        return 0
    response = await anyio.to_thread.run_sync(
        lambda: driver.client.list_multipart_uploads(Bucket=driver.bucket)
    )
    return len(response.get("Uploads", []))


def chunk_key(upload_id: str, index: int) -> str:
    """A key shaped like an upload chunk; drivers do not care about the layout."""
    return f"uploads/{upload_id}/{index:08d}"


def tmp_leftovers(driver: StorageDriver) -> list[str]:
    if not isinstance(driver, FilesystemDriver):
        return []
    return [p.name for p in (driver.root / TMP_DIR).iterdir()]


# --- write / stat / read --------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [0, 1, 100_000, TEST_PART_SIZE, TEST_PART_SIZE + 1, 12 * MiB],
    ids=["empty", "one-byte", "small", "exactly-one-part", "one-part-plus-one", "three-parts"],
)
async def test_write_stat_read_round_trip(driver: StorageDriver, size: int) -> None:
    data = payload(size)
    key = "blobs/sha256/ab/round-trip"

    assert await driver.stat(key) is None
    written = await driver.write(key, chunked(data))

    assert written == size
    assert await driver.stat(key) == size
    pieces = [piece async for piece in driver.read(key)]
    assert b"".join(pieces) == data
    assert all(0 < len(piece) <= READ_PIECE for piece in pieces)


async def test_multipart_write_uses_parts_of_part_size(s3_driver: S3Driver) -> None:
    data = payload(12 * MiB)
    await s3_driver.write("blobs/big", chunked(data))

    head = s3_driver.client.head_object(Bucket=s3_driver.bucket, Key="registry/blobs/big")
    assert head["ETag"].strip('"').endswith("-3")  # 5 MiB + 5 MiB + 2 MiB
    assert await read_all(s3_driver, "blobs/big") == data


async def test_observer_sees_every_byte_in_order_from_a_worker_thread(
    driver: StorageDriver,
) -> None:
    data = payload(12 * MiB, seed=1)
    seen = hashlib.sha256()
    threads: set[int] = set()
    count = 0

    def observer(piece: bytes) -> None:
        nonlocal count
        threads.add(threading.get_ident())
        seen.update(piece)
        count += len(piece)

    written = await driver.write("blobs/observed", chunked(data, 65_537), observer)

    assert written == count == len(data)
    assert seen.hexdigest() == hashlib.sha256(data).hexdigest()
    assert threading.get_ident() not in threads


async def test_write_accepts_empty_chunks_and_one_huge_chunk(driver: StorageDriver) -> None:
    data = payload(11 * MiB, seed=2)

    async def chunks() -> AsyncIterator[bytes]:
        yield b""
        yield data
        yield b""

    assert await driver.write("blobs/huge-chunk", chunks()) == len(data)
    assert await read_all(driver, "blobs/huge-chunk") == data


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, None),
        (10, None),
        (0, 10),
        (100, 1000),
        (MiB - 3, 2 * MiB + 7),  # crosses read pieces
        (3 * MiB, None),
        (3 * MiB + 100 - 10, 100),  # runs past the end
        (3 * MiB + 100 - 1, None),  # the last byte
        (3 * MiB + 100, None),  # exactly at the end
        (3 * MiB + 100, 10),
        (3 * MiB + 500, 10),  # beyond the end
        (5, 0),
    ],
)
async def test_range_reads(driver: StorageDriver, offset: int, length: int | None) -> None:
    data = payload(3 * MiB + 100, seed=3)
    await driver.write("blobs/ranged", chunked(data))

    expected = data[offset:] if length is None else data[offset : offset + length]
    pieces = [piece async for piece in driver.read("blobs/ranged", offset, length)]
    assert b"".join(pieces) == expected
    assert all(len(piece) <= READ_PIECE for piece in pieces)


async def test_range_read_of_empty_object(driver: StorageDriver) -> None:
    await driver.write("blobs/empty", chunked(b""))
    assert await read_all(driver, "blobs/empty") == b""
    assert await read_all(driver, "blobs/empty", 0, 10) == b""
    assert await read_all(driver, "blobs/empty", 5) == b""


@pytest.mark.parametrize(("offset", "length"), [(0, None), (10, 5), (0, 0)])
async def test_read_missing_key_raises_before_any_data(
    driver: StorageDriver, offset: int, length: int | None
) -> None:
    stream = driver.read("blobs/missing", offset, length)
    with pytest.raises(StorageNotFound):
        await stream.__anext__()
    assert await driver.stat("blobs/missing") is None


async def test_abandoned_read_can_be_closed(driver: StorageDriver) -> None:
    data = payload(3 * MiB, seed=4)
    await driver.write("blobs/abandoned", chunked(data))
    stream = driver.read("blobs/abandoned")
    assert await stream.__anext__() == data[:READ_PIECE]
    await stream.aclose()  # type: ignore[attr-defined]


async def test_overwrite_is_atomic(driver: StorageDriver) -> None:
    key = "blobs/overwritten"
    old, new = payload(2 * MiB, seed=5), payload(12 * MiB, seed=6)
    await driver.write(key, chunked(old))
    paused = anyio.Event()
    resume = anyio.Event()
    part_handed_over = threading.Event()
    observed = 0

    def observer(piece: bytes) -> None:
        nonlocal observed
        observed += len(piece)
        if observed >= 6 * MiB:  # more than a full part has reached the sink
            part_handed_over.set()

    async def chunks() -> AsyncIterator[bytes]:
        half = 7 * MiB
        async for piece in chunked(new[:half]):
            yield piece
        paused.set()
        await resume.wait()
        async for piece in chunked(new[half:]):
            yield piece

    async with anyio.create_task_group() as group:
        result: list[int] = []

        async def writer() -> None:
            result.append(await driver.write(key, chunks(), observer))

        group.start_soon(writer)
        await paused.wait()
        assert await anyio.to_thread.run_sync(part_handed_over.wait, 20)
        assert await driver.stat(key) == len(old)
        assert await read_all(driver, key) == old
        resume.set()

    assert result == [len(new)]
    assert await driver.stat(key) == len(new)
    assert await read_all(driver, key) == new


# --- failed writes ----------------------------------------------------------------------------


class ChunkSourceFailed(Exception):
    pass


@pytest.mark.parametrize("fail_after", [0, 100_000, 7 * MiB], ids=["at-once", "small", "parts"])
async def test_failed_chunk_stream_leaves_no_object(driver: StorageDriver, fail_after: int) -> None:
    data = payload(fail_after, seed=7)

    async def chunks() -> AsyncIterator[bytes]:
        async for piece in chunked(data):
            yield piece
        raise ChunkSourceFailed

    with pytest.raises(ChunkSourceFailed):
        await driver.write("uploads/fresh/00000000", chunks())

    assert await driver.stat("uploads/fresh/00000000") is None
    assert await listed(driver, "uploads") == set()
    assert await multipart_uploads_in_progress(driver) == 0
    assert tmp_leftovers(driver) == []


@pytest.mark.parametrize("fail_after", [100_000, 7 * MiB], ids=["small", "parts"])
async def test_failed_overwrite_keeps_old_object(driver: StorageDriver, fail_after: int) -> None:
    key = "blobs/kept"
    old = payload(1 * MiB + 1, seed=8)
    await driver.write(key, chunked(old))
    new = payload(fail_after, seed=9)

    async def chunks() -> AsyncIterator[bytes]:
        async for piece in chunked(new):
            yield piece
        raise ChunkSourceFailed

    with pytest.raises(ChunkSourceFailed):
        await driver.write(key, chunks())

    assert await driver.stat(key) == len(old)
    assert await read_all(driver, key) == old
    assert await multipart_uploads_in_progress(driver) == 0
    assert tmp_leftovers(driver) == []


async def test_failing_observer_aborts_the_write(driver: StorageDriver) -> None:
    def observer(piece: bytes) -> None:
        raise ChunkSourceFailed

    with pytest.raises(ChunkSourceFailed):
        await driver.write("blobs/observer-failed", chunked(payload(6 * MiB)), observer)
    assert await driver.stat("blobs/observer-failed") is None
    assert await multipart_uploads_in_progress(driver) == 0


async def test_cancelled_write_leaves_old_object(driver: StorageDriver) -> None:
    key = "blobs/cancelled"
    old = payload(100, seed=50)
    await driver.write(key, chunked(old))
    part_handed_over = threading.Event()
    observed = 0

    def observer(piece: bytes) -> None:
        nonlocal observed
        observed += len(piece)
        if observed >= 6 * MiB:
            part_handed_over.set()

    async def chunks() -> AsyncIterator[bytes]:
        async for piece in chunked(payload(7 * MiB, seed=51)):
            yield piece
        await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(driver.write, key, chunks(), observer)
        assert await anyio.to_thread.run_sync(part_handed_over.wait, 20)
        group.cancel_scope.cancel()

    # Clean-up may finish in a worker thread after the cancelled task has gone.
    for _ in range(200):
        if not await multipart_uploads_in_progress(driver) and not tmp_leftovers(driver):
            break
        await anyio.sleep(0.05)
    assert await multipart_uploads_in_progress(driver) == 0
    assert tmp_leftovers(driver) == []
    assert await read_all(driver, key) == old


# --- compose ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 100, 6 * MiB], ids=["empty", "small", "large"])
async def test_compose_one_source_moves_it(driver: StorageDriver, size: int) -> None:
    data = payload(size, seed=10)
    source = chunk_key(UPLOAD_ID, 0)
    await driver.write(source, chunked(data))

    await driver.compose([source], "blobs/sha256/aa/composed")

    assert await read_all(driver, "blobs/sha256/aa/composed") == data
    assert await driver.stat(source) is None


SEVERAL = {
    # big whole copy, small buffered, then the head of the last source tops up a part and
    # its tail is a ranged copy
    "copy-buffer-range": [5 * MiB, 1 * MiB, 5 * MiB],
    # small pieces merge across source boundaries; a big source is split between two parts
    "merged": [100, 6 * MiB, 1 * MiB, 3 * MiB + 7, 2 * MiB, 10],
    # everything small: one object smaller than a part
    "all-small": [100, 1 * MiB, 3 * MiB + 7, 10],
    # a small last source is copied as the (short) last part; empty sources are skipped
    "small-last": [6 * MiB, 0, 10],
    "empties": [0, 0],
}


@pytest.mark.parametrize("sizes", list(SEVERAL.values()), ids=list(SEVERAL))
async def test_compose_several_sources(driver: StorageDriver, sizes: list[int]) -> None:
    sources = [chunk_key(UPLOAD_ID, index) for index in range(len(sizes))]
    parts = [payload(size, seed=20 + index) for index, size in enumerate(sizes)]
    for source, data in zip(sources, parts, strict=True):
        await driver.write(source, chunked(data))
    dest = "blobs/sha256/bb/composed"

    await driver.compose(sources, dest)

    expected = b"".join(parts)
    assert await driver.stat(dest) == len(expected)
    composed = await read_all(driver, dest)
    assert hashlib.sha256(composed).hexdigest() == hashlib.sha256(expected).hexdigest()
    for source in sources:
        assert await driver.stat(source) is None
    assert await multipart_uploads_in_progress(driver) == 0


async def test_compose_replaces_existing_destination(driver: StorageDriver) -> None:
    dest = "blobs/sha256/cc/composed"
    await driver.write(dest, chunked(b"old content"))
    sources = [chunk_key(UPLOAD_ID, 0), chunk_key(UPLOAD_ID, 1)]
    await driver.write(sources[0], chunked(b"new "))
    await driver.write(sources[1], chunked(b"content"))

    await driver.compose(sources, dest)

    assert await read_all(driver, dest) == b"new content"


@pytest.mark.parametrize("missing", [0, 1, 2])
async def test_compose_with_missing_source_raises(driver: StorageDriver, missing: int) -> None:
    sources = [chunk_key(UPLOAD_ID, index) for index in range(3)]
    for index, source in enumerate(sources):
        if index != missing:
            await driver.write(source, chunked(payload(100, seed=index)))
    dest = "blobs/sha256/dd/composed"

    with pytest.raises(StorageNotFound):
        await driver.compose(sources, dest)

    assert await driver.stat(dest) is None
    for index, source in enumerate(sources):
        if index != missing:
            assert await read_all(driver, source) == payload(100, seed=index)


async def test_compose_of_a_single_missing_source_raises(driver: StorageDriver) -> None:
    with pytest.raises(StorageNotFound):
        await driver.compose([chunk_key(UPLOAD_ID, 0)], "blobs/sha256/ee/composed")
    assert await driver.stat("blobs/sha256/ee/composed") is None


# --- delete / list ---------------------------------------------------------------------------


async def test_delete_is_idempotent(driver: StorageDriver) -> None:
    await driver.delete("blobs/never-written")
    await driver.write("blobs/deleted", chunked(b"data"))

    await driver.delete("blobs/deleted")
    await driver.delete("blobs/deleted")

    assert await driver.stat("blobs/deleted") is None
    with pytest.raises(StorageNotFound):
        await read_all(driver, "blobs/deleted")


async def test_list_and_delete_prefix(driver: StorageDriver) -> None:
    mine = {chunk_key(UPLOAD_ID, index) for index in range(3)}
    other = {chunk_key(OTHER_UPLOAD_ID, 0)}
    lookalike = {f"uploads/{UPLOAD_ID}0/00000000"}  # shares a string prefix, not a folder
    blobs = {"blobs/sha256/ab/abcdef"}
    for key in mine | other | lookalike | blobs:
        await driver.write(key, chunked(key.encode()))

    assert await listed(driver, f"uploads/{UPLOAD_ID}") == mine
    assert await listed(driver, "uploads") == mine | other | lookalike
    assert await listed(driver, "blobs") == blobs
    assert await listed(driver, "nothing") == set()

    await driver.delete_prefix(f"uploads/{UPLOAD_ID}")

    assert await listed(driver, f"uploads/{UPLOAD_ID}") == set()
    assert await listed(driver, "uploads") == other | lookalike
    for key in mine:
        assert await driver.stat(key) is None
    for key in other | lookalike | blobs:
        assert await read_all(driver, key) == key.encode()
    await driver.delete_prefix(f"uploads/{UPLOAD_ID}")  # again: nothing to do
    await driver.delete_prefix("nothing")


async def test_scan_gives_sizes_and_modification_times(driver: StorageDriver) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    keys = {chunk_key(UPLOAD_ID, index): payload(100 * index, seed=index) for index in range(3)}
    keys["blobs/sha256/ab/abcdef"] = payload(10)
    for key, data in keys.items():
        await driver.write(key, chunked(data))
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)

    scanned = [info async for info in driver.scan("uploads")]
    assert {info.key: info.size for info in scanned} == {
        key: len(data) for key, data in keys.items() if key.startswith("uploads/")
    }
    for info in scanned:
        assert before <= info.modified <= after
        assert info.modified.utcoffset() == dt.timedelta(0)
    assert [info async for info in driver.scan("nothing")] == []


async def test_pending_writes_lists_and_discards_an_interrupted_write(
    driver: StorageDriver,
) -> None:
    """A write in progress (or abandoned by a killed process) is a pending write until it
    completes; discarding it makes the write fail and leaves no object."""
    assert [w async for w in driver.pending_writes()] == []
    release = anyio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        async for piece in chunked(payload(7 * MiB, seed=60)):
            yield piece
        await release.wait()

    failures: list[BaseException] = []

    async def write() -> None:
        try:
            await driver.write("blobs/interrupted", stalling())
        except Exception as exc:  # asserted below
            failures.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(write)
        pending = []
        with anyio.fail_after(30):
            while not pending or pending[0].size == 0:  # until the first bytes have landed
                await anyio.sleep(0.05)
                pending = [w async for w in driver.pending_writes()]
        (found,) = pending
        assert found.last_activity <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
        await driver.discard_pending(found)
        await driver.discard_pending(found)  # gone already: fine
        assert [w async for w in driver.pending_writes()] == []
        release.set()
    assert len(failures) == 1
    assert await driver.stat("blobs/interrupted") is None


# --- keys ------------------------------------------------------------------------------------

INVALID_KEYS = ["../x", "a//b", "/abs", "a/./b", "", "a/../b", "trailing/", ".", "a b", "a\\b"]


async def _drain(stream: AsyncIterator[Any]) -> None:
    async for _ in stream:
        pass


def _operations(driver: StorageDriver, key: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "stat": lambda: driver.stat(key),
        "read": lambda: _drain(driver.read(key)),
        "write": lambda: driver.write(key, chunked(b"data")),
        "compose-source": lambda: driver.compose([key], "blobs/dest"),
        "compose-dest": lambda: driver.compose(["blobs/src"], key),
        "delete": lambda: driver.delete(key),
        "delete_prefix": lambda: driver.delete_prefix(key),
        "list": lambda: _drain(driver.list(key)),
    }


@pytest.mark.parametrize("key", INVALID_KEYS)
async def test_invalid_keys_are_refused(driver: StorageDriver, key: str) -> None:
    await driver.write("blobs/src", chunked(b"source"))
    for name, operation in _operations(driver, key).items():
        with pytest.raises(StorageKeyInvalid):
            await operation()
        assert await driver.stat("blobs/src") == 6, name
    if isinstance(driver, S3Driver):
        with pytest.raises(StorageKeyInvalid):
            await driver.redirect_url(key, 60)


# --- redirects / close -----------------------------------------------------------------------


async def test_redirect_url(driver: StorageDriver) -> None:
    data = payload(100_000, seed=30)
    await driver.write("blobs/sha256/ab/redirected", chunked(data))

    url = await driver.redirect_url("blobs/sha256/ab/redirected", 60)

    if isinstance(driver, FilesystemDriver):
        assert url is None
        return
    assert url is not None
    assert url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == data


# --- S3 only ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage_path", "prefix"), [("", ""), ("/registry", "registry/"), ("a/b/", "a/b/")]
)
async def test_s3_storage_path_prefixes_bucket_keys(
    s3_params: dict[str, Any], storage_path: str, prefix: str
) -> None:
    params = dict(s3_params, storage_path=storage_path)
    driver = S3Driver.from_params(params)
    try:
        await driver.write("blobs/prefixed", chunked(b"prefixed"))
        head = driver.client.head_object(Bucket=driver.bucket, Key=f"{prefix}blobs/prefixed")
        assert head["ContentLength"] == 8
        assert await listed(driver, "blobs") == {"blobs/prefixed"}
    finally:
        await driver.close()


async def test_s3_from_params_builds_endpoint_from_host_and_port(
    s3_params: dict[str, Any],
) -> None:
    endpoint = httpx.URL(s3_params["endpoint_url"])
    params = {k: v for k, v in s3_params.items() if k != "endpoint_url"}
    params.update(host=endpoint.host, port=endpoint.port, is_secure=False)
    driver = S3Driver.from_params(params)
    try:
        assert driver.client.meta.endpoint_url == f"http://127.0.0.1:{endpoint.port}"
        await driver.write("blobs/via-host", chunked(b"via host"))
        assert await read_all(driver, "blobs/via-host") == b"via host"
    finally:
        await driver.close()


async def test_s3_compose_splits_sources_larger_than_one_copy(
    s3_params: dict[str, Any],
) -> None:
    driver = S3Driver(
        S3Driver.from_params(s3_params).client,
        s3_params["s3_bucket"],
        "registry",
        part_size=MIN_PART,
        create_bucket=True,
        copy_part_limit=2 * MIN_PART,
    )
    try:
        data = payload(12 * MiB, seed=40)
        source = chunk_key(UPLOAD_ID, 0)
        await driver.write(source, chunked(data))

        await driver.compose([source], "blobs/split")

        head = driver.client.head_object(Bucket=driver.bucket, Key="registry/blobs/split")
        assert head["ETag"].strip('"').endswith("-2")  # two 6 MiB ranged copies
        assert await read_all(driver, "blobs/split") == data
        assert await driver.stat(source) is None
    finally:
        await driver.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"s3_bucket": ""}, "s3_bucket"),
        ({"part_size": MIN_PART - 1}, "part size"),
        ({"port": "http", "host": "127.0.0.1", "endpoint_url": None}, "port"),
        ({"is_secure": "maybe"}, "is_secure"),
    ],
)
def test_s3_from_params_refuses_bad_config(change: dict[str, Any], message: str) -> None:
    params = s3_storage_params("http://127.0.0.1:1", "config-check")
    params.update(change)
    with pytest.raises(ConfigError, match=message):
        S3Driver.from_params(params)
