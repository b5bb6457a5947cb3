"""ORM models, one module per aggregate. Importing this package registers every table."""

from moorage.db.models.account import (
    AccessToken,
    Account,
    AccountKind,
    OrgMember,
    OrgRole,
    RepoRole,
    RepositoryPermission,
)
from moorage.db.models.audit import AuditLog
from moorage.db.models.blob import Blob, RepositoryBlob
from moorage.db.models.login_throttle import LoginFailureCounter, LoginTrustedPair
from moorage.db.models.manifest import Manifest, ManifestBlob, ManifestChild
from moorage.db.models.mirror import (
    MirrorConfig,
    MirrorRun,
    MirrorWorkerBeat,
    RunStatus,
    SyncStatus,
)
from moorage.db.models.notification import (
    DeliveryStatus,
    NotificationDelivery,
    NotificationEvent,
    RepositoryNotification,
)
from moorage.db.models.repository import Repository, RepositoryState, Visibility
from moorage.db.models.tag import Tag
from moorage.db.models.upload import Upload

__all__ = [
    "AccessToken",
    "Account",
    "AccountKind",
    "AuditLog",
    "Blob",
    "DeliveryStatus",
    "LoginFailureCounter",
    "LoginTrustedPair",
    "Manifest",
    "ManifestBlob",
    "ManifestChild",
    "MirrorConfig",
    "MirrorRun",
    "MirrorWorkerBeat",
    "NotificationDelivery",
    "NotificationEvent",
    "OrgMember",
    "OrgRole",
    "RepoRole",
    "Repository",
    "RepositoryBlob",
    "RepositoryNotification",
    "RepositoryPermission",
    "RepositoryState",
    "RunStatus",
    "SyncStatus",
    "Tag",
    "Upload",
    "Visibility",
]
