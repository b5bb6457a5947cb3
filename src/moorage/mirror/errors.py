"""Typed failures of a mirror sync. ``kind`` feeds MirrorRun.error_kind and the metrics reason.

Failures are classified where they happen (HTTP status, exception type), never by matching the
text of an error message.
"""

from __future__ import annotations

from moorage.errors import MoorageError


class MirrorError(MoorageError):
    kind = "internal"
    # Quay's failure-reason label for quay_repository_mirror_* metrics.
    reason = "unknown_error"


class SourceNotAllowed(MirrorError):
    """Source registry location is not allowed"""

    kind = "invalid_source_registry"
    reason = "invalid_source_registry"


class CredentialsUnreadable(MirrorError):
    """the stored upstream credentials cannot be decrypted"""

    kind = "decryption_failed"
    reason = "decryption_failed"


class UpstreamError(MirrorError):
    """the upstream registry answered something unexpected"""

    kind = "protocol"


class UpstreamProtocolError(UpstreamError):
    """the upstream registry broke the distribution protocol"""

    kind = "protocol"


class UpstreamUnavailable(UpstreamError):
    """the upstream registry keeps answering with a server error (5xx)"""

    kind = "unavailable"


class UpstreamAuthError(UpstreamError):
    """the upstream registry refused our credentials"""

    kind = "auth"
    reason = "auth_failed"


class UpstreamNotFound(UpstreamError):
    """the upstream repository, tag or blob does not exist"""

    kind = "not_found"
    reason = "not_found"


class UpstreamRateLimited(UpstreamError):
    """the upstream registry keeps rate-limiting us"""

    kind = "rate_limited"


class UpstreamTimeout(UpstreamError):
    """the upstream registry did not answer in time"""

    kind = "timeout"
    reason = "network_timeout"


class UpstreamConnectionError(UpstreamError):
    """the upstream registry cannot be reached"""

    kind = "connection"
    reason = "connection_error"


class UpstreamTLSError(UpstreamError):
    """TLS verification of the upstream registry failed"""

    kind = "tls"
    reason = "tls_error"


class DigestMismatch(UpstreamError):
    """content from upstream does not match its digest"""

    kind = "digest_mismatch"


class NoMatchingArchitectures(MirrorError):
    """none of the requested architectures is available"""

    kind = "no_matching_architectures"


class TagTimeout(MirrorError):
    """copying one tag took longer than skopeo_timeout_interval"""

    kind = "timeout"
    reason = "network_timeout"
