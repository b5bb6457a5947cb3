"""Browser sign-in for the web UI: POST /api/v1/signin, POST /api/v1/signout, GET /api/v1/session.

Sign-in sets an HttpOnly, SameSite=Strict cookie signed with a key derived from SECRET_KEY
(moorage.auth.sessions); nothing is kept on the server. Requests authenticated by that cookie
must send ``X-CSRF-Token`` on every non-GET (enforced in deps.get_principal). Scripts keep
using tokens or Basic credentials.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from moorage.api.deps import client_address, login_throttle
from moorage.api.v1.deps import AccountsDep, SettingsDep, session_principal
from moorage.api.v1.schemas import Request as RequestBody
from moorage.auth import sessions
from moorage.config import Settings
from moorage.errors import InvalidRequest, NotFound, PermissionDenied
from moorage.services.mirror_rules import format_date

router = APIRouter(tags=["session"])
BAD_CREDENTIALS = "Invalid username or password"


class SignIn(RequestBody):
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=4096)


def _secure(request: Request, settings: Settings) -> bool:
    return request.url.scheme == "https" or settings.PREFERRED_URL_SCHEME == "https"


def _set_cookie(response: Response, value: str, max_age: int, secure: bool) -> None:
    response.set_cookie(
        sessions.COOKIE_NAME,
        value,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


@router.post("/signin", summary="signinUser")
async def signin(
    body: SignIn,
    request: Request,
    response: Response,
    accounts: AccountsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Check a user's password and start a 12-hour browser session (a signed cookie).

    Failures never tell whether the user exists: 403 ``Invalid username or password``.
    Robots and organizations cannot sign in. The body must be JSON (a cross-site form cannot
    send it without the browser asking first), so no page elsewhere can sign a victim in.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise InvalidRequest("Content-Type must be application/json")
    throttle = login_throttle(request)
    address = client_address(request)
    await throttle.check(body.username, address)
    principal = await accounts.authenticate(body.username, body.password)
    if principal is None:
        await throttle.failed(body.username, address)
    else:
        await throttle.succeeded(body.username, address)
    if principal is None or principal.kind != "user" or principal.account_id is None:
        raise PermissionDenied(BAD_CREDENTIALS, detail={"success": False})
    try:
        account = await accounts.get(body.username)
    except NotFound as exc:  # deleted between the two reads
        raise PermissionDenied(BAD_CREDENTIALS, detail={"success": False}) from exc
    now = int(time.time())
    secret = settings.secret("SECRET_KEY")
    value = sessions.issue(
        secret, account.id, account.username, sessions.fingerprint(account.secret_hash), now
    )
    _set_cookie(response, value, sessions.SESSION_SECONDS, _secure(request, settings))
    _no_store(response)
    return {
        "success": True,
        "username": account.username,
        "csrf_token": sessions.csrf_token(secret, value),
        "expires_at": _iso(now + sessions.SESSION_SECONDS),
    }


@router.post("/signout", summary="logout")
async def signout(request: Request, response: Response, settings: SettingsDep) -> dict[str, Any]:
    """End the browser session: the cookie is cleared. Harmless without one."""
    response.delete_cookie(
        sessions.COOKIE_NAME,
        path="/",
        secure=_secure(request, settings),
        httponly=True,
        samesite="strict",
    )
    _no_store(response)
    return {"success": True}


@router.get("/session", summary="getSession (Moorage extension)")
async def get_session(
    request: Request, response: Response, settings: SettingsDep
) -> dict[str, Any]:
    """The browser session behind the cookie, with its CSRF token; ``authenticated: false``
    without a valid one. Only same-origin pages can read the answer (no CORS)."""
    _no_store(response)
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    principal = await session_principal(request, cookie) if cookie else None
    claims = sessions.peek(cookie, int(time.time())) if cookie else None
    if principal is None or claims is None or cookie is None:
        return {"authenticated": False}
    return {
        "authenticated": True,
        "username": principal.name,
        "super_user": principal.superuser,
        "csrf_token": sessions.csrf_token(settings.secret("SECRET_KEY"), cookie),
        "expires_at": _iso(claims.expires),
    }


def _iso(seconds: int) -> str | None:
    return format_date(dt.datetime.fromtimestamp(seconds, dt.UTC))
