"""S3Driver: objects live in one S3 (or S3-compatible) bucket under an optional key prefix.

Atomicity comes from S3 itself: ``put_object`` and ``complete_multipart_upload`` make an object
visible all at once, and a failed or abandoned multipart upload is aborted, so a key shows
either its old content or its complete new content.

boto3 is blocking: every call runs in a worker thread via ``asyncio.to_thread``. A boto3 client
is thread-safe, so one client is shared by every request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from moorage.errors import ConfigError, StorageError, StorageNotFound
from moorage.storage.base import READ_PIECE, ChunkObserver, ObjectInfo, PendingWrite
from moorage.storage.paths import validate_key
from moorage.storage.pipeline import pump
from moorage.storage.s3_parts import (
    DEFAULT_PART_SIZE,
    DELETE_BATCH,
    MAX_COPY,
    MIN_PART,
    NO_BUCKET_CODES,
    NOT_FOUND_CODES,
    Composer,
    PartWriter,
    error_code,
    storage_errors,
)

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        ListObjectsV2OutputTypeDef,
        ObjectIdentifierTypeDef,
    )

log = logging.getLogger(__name__)


def _as_bool(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "no", "0", "off"}:
        return False
    raise ConfigError(f"S3Storage: {name} must be a boolean, not {value!r}")


def _opt_str(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"S3Storage: {name} must be a string, not {value!r}")
    return value


def _port(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"S3Storage: invalid port {value!r}")
    try:
        port = int(value)
    except ValueError as exc:
        raise ConfigError(f"S3Storage: invalid port {value!r}") from exc
    if not 0 < port < 65536:
        raise ConfigError(f"S3Storage: invalid port {value!r}")
    return port


class S3Driver:
    name = "S3Storage"

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        storage_path: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        create_bucket: bool = False,
        region: str | None = None,
        copy_part_limit: int = MAX_COPY,
    ) -> None:
        if part_size < MIN_PART:
            raise ConfigError(f"S3Storage: part size must be at least {MIN_PART} bytes")
        if not 2 * MIN_PART <= copy_part_limit <= MAX_COPY:
            raise ConfigError(
                f"S3Storage: copy part limit must be within [{2 * MIN_PART}, {MAX_COPY}]"
            )
        if not bucket:
            raise ConfigError("S3Storage: s3_bucket is required")
        self.client = client
        self.bucket = bucket
        self.prefix = storage_path.strip("/")
        if self.prefix:
            validate_key(self.prefix)
        self.part_size = part_size
        self.copy_part_limit = copy_part_limit
        self.region = region
        self._create_bucket = create_bucket
        self._bucket_ready = not create_bucket
        self._bucket_lock = threading.Lock()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> S3Driver:
        """Build a driver from Quay-style ``S3Storage`` parameters."""
        bucket = _opt_str(params, "s3_bucket")
        if bucket is None:
            raise ConfigError("S3Storage: s3_bucket is required")
        storage_path = _opt_str(params, "storage_path") or ""
        region = _opt_str(params, "s3_region")
        endpoint_url = _opt_str(params, "endpoint_url")
        is_secure = _as_bool(params.get("is_secure"), "is_secure", True)
        verify_param = params.get("verify")
        verify: bool | str = (
            verify_param
            if isinstance(verify_param, str) and verify_param.startswith("/")
            else _as_bool(verify_param, "verify", True)
        )
        if endpoint_url is None:
            host = _opt_str(params, "host")
            if host is not None:
                scheme = "https" if is_secure else "http"
                port = _port(params.get("port"))
                endpoint_url = f"{scheme}://{host}" + (f":{port}" if port else "")
        part_size = params.get("part_size", DEFAULT_PART_SIZE)
        if not isinstance(part_size, int) or isinstance(part_size, bool):
            raise ConfigError(f"S3Storage: part_size must be an integer, not {part_size!r}")

        config = Config(
            signature_version="s3v4",
            # Custom endpoints (MinIO, Ceph RGW, moto) are addressed path-style.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=32,
            connect_timeout=10,
            read_timeout=60,
            # Flexible checksums by default break many S3-compatible servers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session(
            aws_access_key_id=_opt_str(params, "s3_access_key"),
            aws_secret_access_key=_opt_str(params, "s3_secret_key"),
            region_name=region or "us-east-1",
        )
        client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            use_ssl=is_secure,
            verify=verify,
            config=config,
        )
        return cls(
            client,
            bucket,
            storage_path,
            part_size=part_size,
            create_bucket=_as_bool(params.get("create_bucket"), "create_bucket", False),
            region=region,
        )

    # --- helpers ---------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, bucket_key: str) -> str | None:
        if not self.prefix:
            return bucket_key
        head = self.prefix + "/"
        return bucket_key[len(head) :] if bucket_key.startswith(head) else None

    async def _ready(self) -> None:
        if not self._bucket_ready:
            await asyncio.to_thread(self._ensure_bucket)

    def _ensure_bucket(self) -> None:
        with self._bucket_lock, storage_errors(self.bucket):
            if self._bucket_ready:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if error_code(exc) not in NO_BUCKET_CODES:
                    raise
                try:
                    if self.region and self.region != "us-east-1":
                        self.client.create_bucket(
                            Bucket=self.bucket,
                            CreateBucketConfiguration={
                                "LocationConstraint": self.region  # type: ignore[typeddict-item]
                            },
                        )
                    else:
                        self.client.create_bucket(Bucket=self.bucket)
                except ClientError as create_exc:
                    if error_code(create_exc) != "BucketAlreadyOwnedByYou":
                        raise
            self._bucket_ready = True

    def _head(self, bucket_key: str) -> int | None:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=bucket_key)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return response["ContentLength"]

    def _get_range(self, bucket_key: str, start: int, length: int) -> bytes:
        response = self.client.get_object(
            Bucket=self.bucket, Key=bucket_key, Range=f"bytes={start}-{start + length - 1}"
        )
        body = response["Body"]
        try:
            data = body.read()
        finally:
            body.close()
        if len(data) != length:
            raise StorageError(
                f"short read of {bucket_key!r}: wanted {length} bytes, got {len(data)}"
            )
        return data

    def _delete_keys(self, bucket_keys: list[str]) -> None:
        for low in range(0, len(bucket_keys), DELETE_BATCH):
            batch: list[ObjectIdentifierTypeDef] = [
                {"Key": k} for k in bucket_keys[low : low + DELETE_BATCH]
            ]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(
                    f"S3 could not delete {len(errors)} objects, e.g. "
                    f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                )

    def _pages(self, bucket_prefix: str) -> Iterator[ListObjectsV2OutputTypeDef]:
        paginator = self.client.get_paginator("list_objects_v2")
        return iter(paginator.paginate(Bucket=self.bucket, Prefix=bucket_prefix))

    @staticmethod
    def _next_page(
        pages: Iterator[ListObjectsV2OutputTypeDef], prefix: str
    ) -> ListObjectsV2OutputTypeDef | None:
        with storage_errors(prefix):
            return next(pages, None)

    # --- the StorageDriver protocol --------------------------------------------------------

    async def stat(self, key: str) -> int | None:
        bucket_key = self._key(key)
        await self._ready()

        def head() -> int | None:
            with storage_errors(key):
                return self._head(bucket_key)

        return await asyncio.to_thread(head)

    async def read(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        bucket_key = self._key(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"invalid range offset={offset} length={length}")
        await self._ready()
        if length == 0:
            if await self.stat(key) is None:
                raise StorageNotFound(key)
            return

        def open_body() -> StreamingBody | None:
            with storage_errors(key):
                if offset == 0 and length is None:
                    return self.client.get_object(Bucket=self.bucket, Key=bucket_key)["Body"]
                end = "" if length is None else str(offset + length - 1)
                try:
                    response = self.client.get_object(
                        Bucket=self.bucket, Key=bucket_key, Range=f"bytes={offset}-{end}"
                    )
                except ClientError as exc:
                    # The object exists but starts before ``offset``: nothing to read.
                    if error_code(exc) == "InvalidRange":
                        return None
                    raise
                return response["Body"]

        def read_piece(body: StreamingBody) -> bytes:
            with storage_errors(key):
                return body.read(READ_PIECE)

        body = await asyncio.to_thread(open_body)
        if body is None:
            return
        try:
            while True:
                data = await asyncio.to_thread(read_piece, body)
                if not data:
                    break
                yield data
        finally:
            body.close()

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], observer: ChunkObserver | None = None
    ) -> int:
        bucket_key = self._key(key)
        await self._ready()
        writer = PartWriter(self.client, self.bucket, bucket_key, self.part_size, observer)
        try:
            with storage_errors(key):
                size = await pump(chunks, writer.feed)
                await asyncio.to_thread(writer.finish)
        except BaseException:
            # Shielded so a cancelled write still aborts its multipart upload.
            await asyncio.shield(asyncio.to_thread(writer.abort))
            raise
        return size

    async def compose(self, sources: list[str], dest: str) -> None:
        if not sources:
            raise ValueError("compose needs at least one source")
        bucket_sources = [self._key(s) for s in sources]
        bucket_dest = self._key(dest)
        await self._ready()
        await asyncio.to_thread(self._compose_sync, sources, bucket_sources, bucket_dest)

    def _compose_sync(self, sources: list[str], bucket_sources: list[str], dest: str) -> None:
        sizes: list[int] = []
        for name, bucket_key in zip(sources, bucket_sources, strict=True):
            with storage_errors(name):
                size = self._head(bucket_key)
            if size is None:
                raise StorageNotFound(name)
            sizes.append(size)

        if len(bucket_sources) == 1 and sizes[0] <= self.copy_part_limit:
            if bucket_sources[0] != dest:
                with storage_errors(sources[0]):
                    self.client.copy_object(
                        Bucket=self.bucket,
                        Key=dest,
                        CopySource={"Bucket": self.bucket, "Key": bucket_sources[0]},
                    )
        else:
            self._compose_multipart(bucket_sources, sizes, dest)

        leftovers = sorted({k for k in bucket_sources if k != dest})
        try:
            with storage_errors(dest):
                self._delete_keys(leftovers)
        except StorageError:
            # ``dest`` is complete; stale sources are garbage, not a failed compose.
            log.warning("compose into %s left its sources behind", dest, exc_info=True)

    def _compose_multipart(self, bucket_sources: list[str], sizes: list[int], dest: str) -> None:
        """Every part but the last is ≥ MIN_PART: sources that big are copied server-side;
        smaller pieces are merged in a buffer that never holds more than MIN_PART bytes."""
        composer = Composer(self.client, self.bucket, dest, self.copy_part_limit)
        buffer = bytearray()
        last_index = len(bucket_sources) - 1
        try:
            with storage_errors(dest):
                for index, (source, size) in enumerate(zip(bucket_sources, sizes, strict=True)):
                    position = 0
                    if buffer and size:
                        # Top the buffer up to a full part from the head of this source.
                        take = min(MIN_PART - len(buffer), size)
                        buffer += self._get_range(source, 0, take)
                        position = take
                        if len(buffer) >= MIN_PART:
                            composer.add_bytes(bytes(buffer))
                            buffer.clear()
                    remaining = size - position
                    if remaining == 0:
                        continue
                    # Here the buffer is empty: either it was, or it was just flushed.
                    if remaining >= MIN_PART or index == last_index:
                        composer.add_copy(source, position, size, size)
                    else:
                        buffer += self._get_range(source, position, remaining)
                composer.finish(bytes(buffer))
        except BaseException:
            composer.abort()
            raise

    async def delete(self, key: str) -> None:
        bucket_key = self._key(key)
        await self._ready()

        def delete() -> None:
            with storage_errors(key):
                self.client.delete_object(Bucket=self.bucket, Key=bucket_key)

        await asyncio.to_thread(delete)

    async def delete_prefix(self, prefix: str) -> None:
        bucket_prefix = self._key(prefix) + "/"
        await self._ready()

        def delete_all() -> None:
            with storage_errors(prefix):
                for page in self._pages(bucket_prefix):
                    self._delete_keys([obj["Key"] for obj in page.get("Contents", [])])

        await asyncio.to_thread(delete_all)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        bucket_prefix = self._key(prefix) + "/"
        await self._ready()
        pages = self._pages(bucket_prefix)
        while True:
            page = await asyncio.to_thread(self._next_page, pages, prefix)
            if page is None:
                return
            for obj in page.get("Contents", []):
                key = self._relative(obj["Key"])
                if key is not None:
                    yield key

    async def scan(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        bucket_prefix = self._key(prefix) + "/"
        await self._ready()
        pages = self._pages(bucket_prefix)
        while True:
            page = await asyncio.to_thread(self._next_page, pages, prefix)
            if page is None:
                return
            for obj in page.get("Contents", []):
                key = self._relative(obj["Key"])
                if key is not None:
                    yield ObjectInfo(key, obj["Size"], obj["LastModified"].astimezone(dt.UTC))

    async def pending_writes(self) -> AsyncIterator[PendingWrite]:
        """Multipart uploads of this prefix never completed nor aborted. Their last activity
        is the newest part's upload time (the initiation time if no part arrived)."""
        await self._ready()
        found = await asyncio.to_thread(self._multipart_uploads)
        for write in found:
            yield write

    def _multipart_uploads(self) -> tuple[PendingWrite, ...]:
        bucket_prefix = f"{self.prefix}/" if self.prefix else ""
        found = []
        with storage_errors(bucket_prefix or "/"):
            uploads = self.client.get_paginator("list_multipart_uploads")
            for page in uploads.paginate(Bucket=self.bucket, Prefix=bucket_prefix):
                for upload in page.get("Uploads", []):
                    key = self._relative(upload["Key"])
                    if key is None:
                        continue
                    latest = upload["Initiated"]
                    size = 0
                    try:
                        parts = self.client.get_paginator("list_parts").paginate(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        for part_page in parts:
                            for part in part_page.get("Parts", []):
                                size += part["Size"]
                                latest = max(latest, part["LastModified"])
                    except ClientError as exc:
                        if error_code(exc) == "NoSuchUpload":  # completed or aborted meanwhile
                            continue
                        raise
                    found.append(
                        PendingWrite(key, latest.astimezone(dt.UTC), size, upload["UploadId"])
                    )
        return tuple(found)

    async def discard_pending(self, write: PendingWrite) -> None:
        bucket_key = self._key(write.key)
        await self._ready()

        def abort() -> None:
            with storage_errors(write.key):
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=bucket_key, UploadId=write.handle
                    )
                except ClientError as exc:
                    if error_code(exc) != "NoSuchUpload":
                        raise

        await asyncio.to_thread(abort)

    async def redirect_url(self, key: str, expires_in: int) -> str | None:
        bucket_key = self._key(key)

        def presign() -> str:
            with storage_errors(key):
                return self.client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": bucket_key},
                    ExpiresIn=expires_in,
                )

        return await asyncio.to_thread(presign)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)
