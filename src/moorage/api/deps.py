"""Request-scoped access to the process-wide objects built by create_app."""

from __future__ import annotations

from starlette.requests import Request

from moorage.config import Settings
from moorage.services.login_throttle import LoginThrottle
from moorage.services.registry import RegistryServices


def services(request: Request) -> RegistryServices:
    value: RegistryServices = request.app.state.services
    return value


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def login_throttle(request: Request) -> LoginThrottle:
    """The process's failed-login counters (made on first use from the app's settings)."""
    state = request.app.state
    throttle = getattr(state, "login_throttle", None)
    if not isinstance(throttle, LoginThrottle):
        throttle = LoginThrottle.from_settings(settings(request), request.app.state.db)
        state.login_throttle = throttle
    return throttle


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None
