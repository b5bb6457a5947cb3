"""Wire the registry services together once per process."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.config import Settings
from moorage.db.engine import Database
from moorage.services.blobs import BlobService
from moorage.services.hashcache import UploadHashCache
from moorage.services.manifests import ManifestService
from moorage.services.repo_cache import RepoCache
from moorage.services.repositories import RepositoryService
from moorage.services.uploads import UploadService
from moorage.storage.base import StorageDriver


@dataclass(frozen=True, slots=True)
class RegistryServices:
    repositories: RepositoryService
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        storage: StorageDriver,
        repo_cache: RepoCache | None = None,
    ) -> RegistryServices:
        blobs = BlobService(db, storage)
        return cls(
            repositories=RepositoryService(db, repo_cache),
            blobs=blobs,
            uploads=UploadService(
                db, storage, blobs, UploadHashCache(), settings.MAXIMUM_LAYER_SIZE
            ),
            manifests=ManifestService(db, settings.MAXIMUM_MANIFEST_SIZE),
        )
