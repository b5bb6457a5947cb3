"""Build the configured storage driver from Settings."""

from __future__ import annotations

from moorage.config import Settings
from moorage.errors import ConfigError
from moorage.storage.base import StorageDriver
from moorage.storage.filesystem import FilesystemDriver


def build_driver(settings: Settings) -> StorageDriver:
    kind, params = settings.storage_entry
    if kind == "LocalStorage":
        path = params.get("storage_path")
        if not path:
            raise ConfigError("DISTRIBUTED_STORAGE_CONFIG: LocalStorage needs storage_path")
        return FilesystemDriver(path)
    if kind == "S3Storage":
        from moorage.storage.s3 import S3Driver  # noqa: PLC0415  (boto3 is slow to import)

        return S3Driver.from_params(params)
    raise ConfigError(f"DISTRIBUTED_STORAGE_CONFIG: unknown storage driver {kind!r}")
