"""FilesystemDriver: objects are files under one root; commits are atomic renames."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from pathlib import Path

from moorage.errors import StorageKeyInvalid, StorageNotFound
from moorage.storage.base import READ_PIECE, ChunkObserver, ObjectInfo, PendingWrite
from moorage.storage.paths import validate_key
from moorage.storage.pipeline import pump

TMP_DIR = "_tmp"
SCAN_BATCH = 1000


class FilesystemDriver:
    name = "LocalStorage"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        (self.root / TMP_DIR).mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # Purely lexical, no system calls on the event loop: validated segments are never
        # empty, "." or "..", so the path stays under the root. Symlinks inside the root (an
        # operator moving blobs/ to another volume) are followed, as any file access does.
        validate_key(key)
        path = self.root.joinpath(*key.split("/"))
        if self.root not in path.parents:
            raise StorageKeyInvalid(f"storage key {key!r} escapes the storage root")
        return path

    def _tmp_path(self) -> Path:
        return self.root / TMP_DIR / uuid.uuid4().hex

    async def stat(self, key: str) -> int | None:
        path = self._path(key)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None

    async def read(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        want = READ_PIECE if length is None else min(READ_PIECE, length)
        try:
            # Opening and reading the first piece share one worker-thread hop.
            fd, data = await asyncio.to_thread(_open_and_read, path, want, offset)
        except FileNotFoundError as exc:
            raise StorageNotFound(key) from exc
        try:
            remaining = length
            position = offset
            while data:
                position += len(data)
                if remaining is not None:
                    remaining -= len(data)
                yield data
                if remaining is not None and remaining <= 0:
                    break
                want = READ_PIECE if remaining is None else min(READ_PIECE, remaining)
                data = await asyncio.to_thread(os.pread, fd, want, position)
        finally:
            os.close(fd)

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], observer: ChunkObserver | None = None
    ) -> int:
        final = self._path(key)
        tmp = self._tmp_path()
        handle = await asyncio.to_thread(open, tmp, "wb")

        def sink(data: bytes) -> None:
            if observer is not None:
                observer(data)
            handle.write(data)

        try:
            size = await pump(chunks, sink)
            await asyncio.to_thread(self._commit, handle, tmp, final)
        except BaseException:
            handle.close()
            tmp.unlink(missing_ok=True)
            raise
        return size

    @staticmethod
    def _commit(handle: object, tmp: Path, final: Path) -> None:
        assert hasattr(handle, "close")
        handle.close()
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)

    async def compose(self, sources: list[str], dest: str) -> None:
        paths = [self._path(s) for s in sources]
        final = self._path(dest)
        await asyncio.to_thread(self._compose_sync, paths, final)

    def _compose_sync(self, paths: list[Path], final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        for path in paths:
            if not path.exists():
                raise StorageNotFound(str(path.relative_to(self.root)))
        if len(paths) == 1:
            os.replace(paths[0], final)
            return
        tmp = self._tmp_path()
        try:
            with tmp.open("wb") as out:
                for path in paths:
                    with path.open("rb") as src:
                        shutil.copyfileobj(src, out, READ_PIECE)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        for path in paths:
            path.unlink(missing_ok=True)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, True)

    async def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        await asyncio.to_thread(shutil.rmtree, path, True)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        base = self._path(prefix)
        files = await asyncio.to_thread(lambda: [p for p in base.rglob("*") if p.is_file()])
        for path in files:
            yield path.relative_to(self.root).as_posix()

    async def scan(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        base = self._path(prefix)
        files = _walk_files(base, self.root)
        while batch := await asyncio.to_thread(_take, files, SCAN_BATCH):
            for info in batch:
                yield info

    async def pending_writes(self) -> AsyncIterator[PendingWrite]:
        # Every write goes through _tmp/ and is renamed into place when complete: what is
        # left there belongs to a write in flight or to a process that died mid-write.
        files = _walk_files(self.root / TMP_DIR, self.root)
        while batch := await asyncio.to_thread(_take, files, SCAN_BATCH):
            for info in batch:
                yield PendingWrite(info.key, info.modified, info.size, "")

    async def discard_pending(self, write: PendingWrite) -> None:
        head, _, name = write.key.partition("/")
        if head != TMP_DIR or not name or "/" in name:
            raise StorageKeyInvalid(f"{write.key!r} is not a pending write of this driver")
        validate_key(write.key)
        await asyncio.to_thread((self.root / TMP_DIR / name).unlink, True)

    async def redirect_url(self, key: str, expires_in: int) -> str | None:
        return None

    async def close(self) -> None:
        return None


def _walk_files(base: Path, root: Path) -> Iterator[ObjectInfo]:
    """Files under ``base`` (none if it does not exist), lazily, for ``scan``."""
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                status = os.stat(path)
            except FileNotFoundError:  # deleted since the directory was listed
                continue
            yield ObjectInfo(
                Path(path).relative_to(root).as_posix(),
                status.st_size,
                dt.datetime.fromtimestamp(status.st_mtime, dt.UTC),
            )


def _take(items: Iterator[ObjectInfo], count: int) -> list[ObjectInfo]:
    return list(itertools.islice(items, count))


def _open_and_read(path: Path, want: int, offset: int) -> tuple[int, bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd, os.pread(fd, want, offset) if want > 0 else b""
    except BaseException:
        os.close(fd)
        raise
