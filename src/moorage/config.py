"""One typed Settings object, loaded and validated once at start-up, then passed explicitly.

Key names follow Quay's ``config.yaml`` wherever Quay has one. Every key can also be set by an
environment variable ``MOORAGE_<KEY>`` (complex values as JSON); the environment wins over the
file, and explicit overrides (command-line flags such as ``serve --port``) win over both. With
no configuration at all, Moorage runs on embedded defaults: SQLite and a local storage folder
inside ``DATA_DIR``, with generated secrets kept in that folder.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from moorage.errors import ConfigError

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

# config.yaml's values while load_settings builds a Settings (read by _ConfigFileSource).
_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("moorage_config_file", default=None)


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The values of config.yaml: below the environment, which is below explicit overrides."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_FILE_VALUES.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_VALUES.get() or {})


StorageEntry = tuple[Literal["LocalStorage", "S3Storage"], dict[str, Any]]


def parse_size(value: int | str) -> int:
    """Parse ``20G``/``512M``/``1024`` (Quay's MAXIMUM_LAYER_SIZE format) into bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r} (use e.g. 20G, 512M, 1048576)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


class Settings(BaseSettings):
    """Every configuration key of Moorage. Field names are the config.yaml keys."""

    model_config = SettingsConfigDict(
        env_prefix="MOORAGE_", case_sensitive=False, extra="ignore", frozen=True
    )

    # --- server ---------------------------------------------------------------------------
    SERVER_HOSTNAME: str | None = Field(
        None, description="host[:port] clients use to reach Moorage; default: the request's Host"
    )
    PREFERRED_URL_SCHEME: Literal["http", "https"] = "http"
    HTTP_HOST: str = Field("127.0.0.1", description="address `moorage serve` listens on")
    HTTP_PORT: int = Field(8080, ge=0, le=65535, description="port `moorage serve` listens on")
    DATA_DIR: Path = Field(
        Path("moorage-data"), description="folder for the embedded SQLite DB, storage, secrets"
    )
    REGISTRY_STATE: Literal["normal", "readonly"] = "normal"
    LOG_FORMAT: Literal["text", "json"] = Field(
        "text",
        description="log lines of `serve` and `worker`: text, or one JSON object per line "
        "with request ids (json also logs one access line per request)",
    )

    # --- database and storage -------------------------------------------------------------
    DB_URI: str | None = Field(
        None, description="sqlite:///path or postgresql://user@host/db; default SQLite in DATA_DIR"
    )
    DB_POOL_SIZE: int = Field(10, ge=1)
    DISTRIBUTED_STORAGE_CONFIG: dict[str, StorageEntry] = Field(
        default_factory=dict,
        description="name -> [LocalStorage|S3Storage, {params}], as in Quay",
    )
    DISTRIBUTED_STORAGE_PREFERENCE: list[str] = Field(default_factory=list)
    BLOB_REDIRECTS: bool = Field(
        False,
        description="answer blob GETs with a 307 to a presigned storage URL (S3) so clients "
        "download from the bucket directly; clients must be able to reach the S3 endpoint",
    )

    # --- secrets --------------------------------------------------------------------------
    DATABASE_SECRET_KEY: SecretStr | None = Field(
        None, description="key for credentials encrypted at rest; generated into DATA_DIR"
    )
    SECRET_KEY: SecretStr | None = Field(
        None, description="key signing registry tokens and sessions; generated into DATA_DIR"
    )
    DATABASE_SECRET_KEY_PREVIOUS: list[SecretStr] = Field(
        default_factory=list,
        description="former DATABASE_SECRET_KEY values, still accepted for decryption (never "
        "for encryption) until `moorage admin rotate-secret-key` has re-encrypted everything",
    )

    # --- registry limits ------------------------------------------------------------------
    MAXIMUM_LAYER_SIZE: int = Field(20 * 1024**3, description="largest accepted blob, e.g. 20G")
    MAXIMUM_MANIFEST_SIZE: int = Field(4 * 1024**2, ge=1024)
    API_MAX_BODY_SIZE: int = Field(
        1024**2,
        ge=1024,
        description="largest request body outside /v2/ (the /api/v1 JSON documents); "
        "larger ones get 413 before they are read",
    )
    UPLOAD_PURGE_AFTER_SECONDS: int = Field(
        86400, ge=60, description="abandoned upload sessions older than this are purged"
    )
    GC_GRACE_PERIOD_SECONDS: int = Field(
        3600, ge=0, description="`moorage gc` never deletes content younger than this"
    )
    REGISTRY_TOKEN_LIFETIME_SECONDS: int = Field(
        3600, ge=60, description="lifetime of the bearer tokens issued by /v2/auth"
    )
    INSECURE_OPEN_REGISTRY_NO_AUTH: bool = Field(
        False, description="DANGER: anyone may pull and push anything. For tests only."
    )

    # --- login throttling (per process: each node counts its own failures) ------------------
    LOGIN_THROTTLE_USER_FAILURES: int = Field(
        5,
        ge=0,
        description="failed password/robot-token logins of one username before each further "
        "failure doubles its wait (1 s, 2 s, 4 s ...; 429 + Retry-After meanwhile); 0: off",
    )
    LOGIN_THROTTLE_IP_FAILURES: int = Field(
        50,
        ge=0,
        description="the same for one client address; users who recently signed in from that "
        "address are exempt; 0: off",
    )
    LOGIN_THROTTLE_MAX_SECONDS: int = Field(
        300, ge=1, description="longest wait imposed after failed logins"
    )
    LOGIN_THROTTLE_SHARED: bool | None = Field(
        None,
        description="keep failed-login counters in the database, shared by every API node "
        "(default: yes on PostgreSQL, no on SQLite, where they stay in process memory)",
    )
    LOGIN_THROTTLE_WINDOW_SECONDS: int = Field(
        900,
        ge=1,
        description="failure counters are forgotten this long after their last failure",
    )

    # --- repository mirroring (Quay's keys) ------------------------------------------------
    SSRF_ALLOWED_HOSTS: list[str] = Field(
        default_factory=list, description="hostnames or CIDRs exempt from the SSRF blocklist"
    )
    REPO_MIRROR_INTERVAL: int = Field(30, ge=1, description="seconds between worker polls")
    REPO_MIRROR_ROLLBACK: bool = Field(False, description="all-or-nothing syncs")
    REPO_MIRROR_MAX_MANIFEST_LIST_SIZE: int = Field(10 * 1024 * 1024, ge=1024)
    REPO_MIRROR_MAX_MANIFEST_ENTRIES: int = Field(1000, ge=1)
    REPO_MIRROR_WORKER_REPLICAS: int | None = Field(None, ge=1)
    REPO_MIRROR_SERVER_HOSTNAME: str | None = Field(
        None, description="accepted for Quay compatibility; the native engine needs no loopback"
    )
    REPO_MIRROR_TLS_VERIFY: bool = Field(
        True, description="accepted for Quay compatibility; the native engine writes directly"
    )
    REPO_MIRROR_CA_BUNDLE: str | None = Field(
        None, description="PEM file of extra CAs trusted for upstream registries"
    )
    REPO_MIRROR_TAG_CONCURRENCY: int = Field(
        16,
        ge=1,
        description="tags in progress at once per sync (their downloads share the connections "
        "below; a tag's skopeo_timeout counts from its start)",
    )
    REPO_MIRROR_CONNECTIONS_PER_HOST: int = Field(
        8, ge=1, description="parallel blob downloads (and connections) per sync"
    )
    REPO_MIRROR_MAX_CONCURRENT_SYNCS: int = Field(4, ge=1, description="syncs per worker")
    REPO_MIRROR_WORKER: bool = Field(True, description="run the mirror worker inside `serve`")
    WORKER_METRICS_PORT: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="port on which a standalone `moorage worker` serves /metrics and "
        "/health/instance; default: none (no HTTP listener)",
    )
    WORKER_METRICS_HOST: str = Field(
        "127.0.0.1", description="address the `moorage worker` metrics listener binds to"
    )
    REPO_MIRROR_LEASE_SECONDS: int = Field(
        60, ge=10, description="a sync lease not renewed for this long is taken over"
    )

    # --- repository notifications (webhooks), delivered where the mirror worker runs --------
    NOTIFICATION_SEND_TIMEOUT: float = Field(
        10.0, gt=0, le=300, description="seconds one webhook attempt may take (Quay's key)"
    )
    NOTIFICATION_RETRY_ATTEMPTS: int = Field(
        5, ge=1, le=50, description="attempts per webhook delivery before it counts as failed"
    )
    NOTIFICATION_RETRY_BACKOFF_SECONDS: float = Field(
        10.0,
        gt=0,
        description="wait before the second attempt; doubles for each further one (max 1 h)",
    )
    NOTIFICATION_POLL_SECONDS: float = Field(
        2.0, gt=0, le=300, description="seconds between polls of the notification queue"
    )
    NOTIFICATION_CA_BUNDLE: str | None = Field(
        None, description="PEM file of extra CAs trusted for https webhook receivers"
    )

    # --- features -------------------------------------------------------------------------
    FEATURE_REPO_MIRROR: bool = True
    FEATURE_SPARSE_INDEX: bool = True
    FEATURE_ANONYMOUS_ACCESS: bool = True
    FEATURE_USER_INITIALIZE: bool = False
    SUPER_USERS: list[str] = Field(default_factory=list)

    @field_validator("MAXIMUM_LAYER_SIZE", mode="before")
    @classmethod
    def _size(cls, value: int | str) -> int:
        return parse_size(value)

    @field_validator("DATABASE_SECRET_KEY_PREVIOUS")
    @classmethod
    def _previous_keys_not_empty(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not key.get_secret_value() for key in value):
            raise ValueError("an empty key is not a key")
        return value

    @model_validator(mode="after")
    def _storage_preference_known(self) -> Settings:
        for name in self.DISTRIBUTED_STORAGE_PREFERENCE:
            if name not in self.DISTRIBUTED_STORAGE_CONFIG:
                raise ValueError(
                    f"DISTRIBUTED_STORAGE_PREFERENCE names {name!r}, "
                    "which is not in DISTRIBUTED_STORAGE_CONFIG"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit overrides (init kwargs: command-line flags) > environment > config.yaml.
        return (init_settings, env_settings, _ConfigFileSource(settings_cls))

    # --- derived values -------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.DB_URI or f"sqlite:///{(self.DATA_DIR / 'moorage.db').resolve()}"

    @property
    def storage_entry(self) -> StorageEntry:
        """The storage location Moorage writes to (first of DISTRIBUTED_STORAGE_PREFERENCE)."""
        if not self.DISTRIBUTED_STORAGE_CONFIG:
            return ("LocalStorage", {"storage_path": str((self.DATA_DIR / "storage").resolve())})
        name = (self.DISTRIBUTED_STORAGE_PREFERENCE or list(self.DISTRIBUTED_STORAGE_CONFIG))[0]
        return self.DISTRIBUTED_STORAGE_CONFIG[name]

    def secret(self, name: Literal["DATABASE_SECRET_KEY", "SECRET_KEY"]) -> str:
        value: SecretStr | None = getattr(self, name)
        if value is None:
            raise ConfigError(f"{name} is not set; call ensure_secrets() at start-up")
        return value.get_secret_value()


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read config.yaml (if any), apply the environment and then ``overrides`` (which win over
    both), validate, and fill generated secrets."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must contain a mapping of keys")
        values.update(loaded)
    token = _FILE_VALUES.set(values)
    try:
        settings = Settings(**overrides)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigError(_describe_validation_error(exc)) from exc
    finally:
        _FILE_VALUES.reset(token)
    return ensure_secrets(settings)


def ensure_secrets(settings: Settings) -> Settings:
    """Generate missing secrets once and keep them in DATA_DIR so restarts reuse them."""
    missing = [k for k in ("DATABASE_SECRET_KEY", "SECRET_KEY") if getattr(settings, k) is None]
    if not missing:
        return settings
    secret_file = settings.DATA_DIR / "secrets.yaml"
    stored: dict[str, str] = {}
    if secret_file.exists():
        stored = yaml.safe_load(secret_file.read_text()) or {}
    changed = False
    for key in missing:
        if key not in stored:
            stored[key] = secrets.token_urlsafe(48)
            changed = True
    if changed:
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        tmp = secret_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(stored))
        tmp.chmod(0o600)
        tmp.replace(secret_file)
    return settings.model_copy(update={k: SecretStr(stored[k]) for k in missing})


def _describe_validation_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for err in errors():
        key = ".".join(str(part) for part in err.get("loc", ())) or "(config)"
        lines.append(f"{key}: {err.get('msg')}")
    return "invalid configuration: " + "; ".join(lines)
