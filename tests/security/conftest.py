"""The /api/v1 fixtures (an authenticating app, seeded users, repository and robot) for the
security tests; see tests/api/conftest.py for what ``world`` contains."""

from __future__ import annotations

from tests.api.conftest import (  # noqa: F401 - fixtures re-exported for this folder
    api,
    api_app,
    api_overrides,
    cheap_password_hashing,
    world,
)
