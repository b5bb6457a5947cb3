"""ORM models, one module per aggregate. Importing this package registers every table."""

from moorage.db.models.blob import Blob, RepositoryBlob
from moorage.db.models.manifest import Manifest, ManifestBlob, ManifestChild
from moorage.db.models.repository import Repository, RepositoryState, Visibility
from moorage.db.models.tag import Tag
from moorage.db.models.upload import Upload

__all__ = [
    "Blob",
    "Manifest",
    "ManifestBlob",
    "ManifestChild",
    "Repository",
    "RepositoryBlob",
    "RepositoryState",
    "Tag",
    "Upload",
    "Visibility",
]
