"""Root exception hierarchy. No HTTP types here: only the API layer maps these to responses."""

from __future__ import annotations

from typing import Any


class MoorageError(Exception):
    """Base of every error Moorage raises on purpose."""

    def __init__(self, message: str = "", *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message or self.__class__.__doc__ or self.__class__.__name__
        self.detail = detail


class ConfigError(MoorageError):
    """The configuration is invalid."""


# --- registry (OCI distribution) errors; names mirror the spec's error codes -------------------


class RegistryError(MoorageError):
    """An error with an OCI distribution-spec error code."""

    code = "UNKNOWN"


class BlobUnknown(RegistryError):
    """blob unknown to registry"""

    code = "BLOB_UNKNOWN"


class BlobUploadInvalid(RegistryError):
    """blob upload invalid"""

    code = "BLOB_UPLOAD_INVALID"


class BlobUploadUnknown(RegistryError):
    """blob upload unknown to registry"""

    code = "BLOB_UPLOAD_UNKNOWN"


class RangeNotSatisfiable(BlobUploadInvalid):
    """the requested range does not follow the data already received"""


class DigestInvalid(RegistryError):
    """provided digest did not match uploaded content"""

    code = "DIGEST_INVALID"


class ManifestBlobUnknown(RegistryError):
    """manifest references a manifest or blob unknown to registry"""

    code = "MANIFEST_BLOB_UNKNOWN"


class ManifestInvalid(RegistryError):
    """manifest invalid"""

    code = "MANIFEST_INVALID"


class ManifestUnknown(RegistryError):
    """manifest unknown to registry"""

    code = "MANIFEST_UNKNOWN"


class NameInvalid(RegistryError):
    """invalid repository name"""

    code = "NAME_INVALID"


class NameUnknown(RegistryError):
    """repository name not known to registry"""

    code = "NAME_UNKNOWN"


class SizeInvalid(RegistryError):
    """provided length did not match content length"""

    code = "SIZE_INVALID"


class Unauthorized(RegistryError):
    """authentication required"""

    code = "UNAUTHORIZED"


class Denied(RegistryError):
    """requested access to the resource is denied"""

    code = "DENIED"


class Unsupported(RegistryError):
    """the operation is unsupported"""

    code = "UNSUPPORTED"


class TooManyRequests(RegistryError):
    """too many requests"""

    code = "TOOMANYREQUESTS"


class PayloadTooLarge(RegistryError):
    """the content is larger than this registry accepts"""

    code = "SIZE_INVALID"


class ReadOnlyError(RegistryError):
    """the registry or repository is read-only"""

    code = "DENIED"


# --- storage -----------------------------------------------------------------------------------


class StorageError(MoorageError):
    """The storage backend failed."""


class StorageNotFound(StorageError):
    """The storage key does not exist."""


class StorageKeyInvalid(StorageError):
    """A storage key escapes the storage root or is malformed."""


# --- management API (/api/v1) errors; rendered as Quay-compatible problem JSON ------------------


class ApiError(MoorageError):
    """An error of the management API."""

    error_type = "invalid_request"


class InvalidRequest(ApiError):
    """Invalid request"""

    error_type = "invalid_request"


class NotFound(ApiError):
    """Not Found"""

    error_type = "not_found"


class Conflict(ApiError):
    """Conflict"""

    error_type = "conflict"


class AuthenticationRequired(ApiError):
    """Requires authentication"""

    error_type = "invalid_token"


class PermissionDenied(ApiError):
    """Unauthorized"""

    error_type = "insufficient_scope"


class RepositoryNotNormal(ApiError):
    """The repository is in read only or mirror mode"""

    error_type = "repository_state"


class ServiceReadOnly(ApiError):
    """System is currently read-only."""

    error_type = "read_only"
