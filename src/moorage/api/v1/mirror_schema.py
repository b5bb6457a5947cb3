"""Quay's JSON schemas for mirror configuration bodies, validated with jsonschema.

Using the same schema language as Quay gives the same error texts (e.g. "60 is less than the
minimum of 300"). Unknown top-level keys are allowed and ignored (no additionalProperties).
Moorage differences: sync_interval minimum is 1, robot_username is required on POST, and
skopeo_timeout_interval is optional on POST (default 300) so Quay's own documented curl works.
Both intervals have a maximum of 2147483647 seconds (Quay's 32-bit column; larger values used
to end in a database error, i.e. a 500).
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match

from moorage.errors import InvalidRequest

_NULLABLE_STRING = {"type": ["string", "null"]}
MAX_SECONDS = 2**31 - 1

COMMON_PROPERTIES: dict[str, Any] = {
    "is_enabled": {"type": "boolean"},
    "external_reference": {"type": "string"},
    "external_registry_username": _NULLABLE_STRING,
    "external_registry_password": _NULLABLE_STRING,
    "sync_start_date": {"type": "string"},
    "sync_interval": {"type": "integer", "minimum": 1, "maximum": MAX_SECONDS},
    "robot_username": {"type": "string"},
    "root_rule": {
        "type": "object",
        "properties": {
            "rule_kind": {"type": "string", "enum": ["tag_glob_csv"]},
            "rule_value": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["rule_kind", "rule_value"],
    },
    "external_registry_config": {
        "type": "object",
        "properties": {
            "verify_tls": {"type": "boolean"},
            "unsigned_images": {"type": "boolean"},
            "proxy": {
                "type": "object",
                "properties": {
                    "http_proxy": _NULLABLE_STRING,
                    "https_proxy": _NULLABLE_STRING,
                    "no_proxy": _NULLABLE_STRING,
                },
            },
        },
    },
    "skopeo_timeout_interval": {"type": "integer", "minimum": 300, "maximum": MAX_SECONDS},
    "architecture_filter": {"type": ["array", "null"], "items": {"type": "string"}},
}

CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": COMMON_PROPERTIES,
    "required": [
        "external_reference",
        "sync_interval",
        "sync_start_date",
        "root_rule",
        "robot_username",
    ],
}

UPDATE_SCHEMA: dict[str, Any] = {"type": "object", "properties": COMMON_PROPERTIES}

_CREATE = Draft4Validator(CREATE_SCHEMA)
_UPDATE = Draft4Validator(UPDATE_SCHEMA)


# Write-only values (GET shows "********"): never echoed in an error message.
SECRET_KEYS = frozenset({"external_registry_password"})
REDACTED = "'********'"


def validate(body: Any, *, create: bool) -> dict[str, Any]:
    """Return ``body`` if it satisfies the schema; else raise with jsonschema's message.

    Only the message's first line is used (``str(error)`` appends the schema and the whole
    instance, which would echo the upstream password), and a credential's value is redacted.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("Missing JSON body")
    validator = _CREATE if create else _UPDATE
    error = best_match(validator.iter_errors(body))
    if error is not None:
        raise InvalidRequest(_describe(error))
    return body


def _describe(error: ValidationError) -> str:
    message = str(error.message)
    if SECRET_KEYS.intersection(str(part) for part in error.absolute_path):
        message = message.replace(repr(error.instance), REDACTED)
    return message
