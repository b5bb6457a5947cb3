"""Request-scoped access to the process-wide objects built by create_app."""

from __future__ import annotations

from starlette.requests import Request

from moorage.config import Settings
from moorage.services.registry import RegistryServices


def services(request: Request) -> RegistryServices:
    value: RegistryServices = request.app.state.services
    return value


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value
