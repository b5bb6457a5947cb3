"""S3 multipart mechanics for S3Driver: streamed part uploads and server-side composition."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from moorage.errors import StorageError, StorageNotFound
from moorage.storage.base import ChunkObserver

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB

# S3 limits: every part but the last is at least 5 MiB; a single copy is at most 5 GiB.
MIN_PART = 5 * MiB
MAX_COPY = 5 * GiB
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 16 * MiB
DELETE_BATCH = 1000

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
NO_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def storage_errors(key: str) -> Iterator[None]:
    """Translate boto errors into the Moorage storage hierarchy."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND_CODES:
            raise StorageNotFound(key) from exc
        raise StorageError(f"S3 request for {key!r} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"S3 request for {key!r} failed: {exc}") from exc


def split_ranges(start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Split ``[start, end)`` into near-equal ranges of at most ``limit`` bytes."""
    total = end - start
    count = max(1, -(-total // limit))
    size = -(-total // count)
    return [(pos, min(pos + size, end)) for pos in range(start, end, size)]


class PartWriter:
    """Accumulates a streamed write into parts of ``part_size`` and uploads them.

    Only called from worker threads. ``pump`` serialises the sink, but a cancelled write may
    call ``abort`` while a ``feed`` is still running in its thread: the lock makes ``abort``
    wait for it, and a later ``feed`` refuses to start a new upload.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        part_size: int,
        observer: ChunkObserver | None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self.observer = observer
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[CompletedPartTypeDef] = []
        self.lock = threading.Lock()
        self.aborted = False

    def feed(self, data: bytes) -> None:
        with self.lock:
            if self.aborted:
                raise StorageError(f"S3 write of {self.key!r} was aborted")
            if self.observer is not None:
                self.observer(data)
            self.buffer += data
            # Strictly greater: the final part is never empty, and an object of exactly one
            # part is a single put_object.
            while len(self.buffer) > self.part_size:
                with memoryview(self.buffer) as view, view[: self.part_size] as head:
                    part = bytes(head)
                del self.buffer[: self.part_size]
                self._upload(part)

    def _upload(self, body: bytes) -> None:
        if self.upload_id is None:
            created = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self.upload_id = created["UploadId"]
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"S3 write of {self.key!r} needs more than {MAX_PARTS} parts")
        response = self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
        )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def finish(self) -> None:
        with self.lock:
            if self.aborted:
                raise StorageError(f"S3 write of {self.key!r} was aborted")
            self._finish()

    def _finish(self) -> None:
        if self.upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer))
        else:
            if self.buffer:
                self._upload(bytes(self.buffer))
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
            self.upload_id = None
        self.buffer = bytearray()

    def abort(self) -> None:
        with self.lock:
            self.aborted = True
            self.buffer = bytearray()
            if self.upload_id is None:
                return
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )
            except (ClientError, BotoCoreError):
                log.warning("could not abort multipart upload of %s", self.key, exc_info=True)
            self.upload_id = None


class Composer:
    """Builds one multipart upload from server-side copies and small in-memory parts."""

    def __init__(self, client: S3Client, bucket: str, key: str, copy_limit: int) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.copy_limit = copy_limit
        self.upload_id: str | None = None
        self.parts: list[CompletedPartTypeDef] = []

    def _start(self) -> str:
        if self.upload_id is None:
            created = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self.upload_id = created["UploadId"]
        if len(self.parts) >= MAX_PARTS:
            raise StorageError(f"S3 compose of {self.key!r} needs more than {MAX_PARTS} parts")
        return self.upload_id

    def add_bytes(self, body: bytes) -> None:
        upload_id = self._start()
        number = len(self.parts) + 1
        response = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def add_copy(self, source: str, start: int, end: int, size: int) -> None:
        """Copy bytes ``[start, end)`` of ``source`` (``size`` bytes long) as one or more parts."""
        for low, high in split_ranges(start, end, self.copy_limit):
            upload_id = self._start()
            number = len(self.parts) + 1
            if low == 0 and high == size:
                response = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source},
                )
            else:
                response = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    CopySourceRange=f"bytes={low}-{high - 1}",
                )
            self.parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})

    def finish(self, tail: bytes) -> None:
        if self.upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=tail)
            return
        if tail:
            self.add_bytes(tail)
        assert self.upload_id is not None
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )
        self.upload_id = None

    def abort(self) -> None:
        if self.upload_id is None:
            return
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
        except (ClientError, BotoCoreError):
            log.warning("could not abort multipart compose of %s", self.key, exc_info=True)
        self.upload_id = None
