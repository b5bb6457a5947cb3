"""UpstreamClient: the distribution API of any registry, spoken natively over httpx.

Handles anonymous, Basic and bearer-token auth (token reuse until expiry, refresh on 401), tag
pagination, manifests with the right Accept types, streamed blobs that resume with Range,
redirects without leaking Authorization to other hosts, retries with back-off honouring
Retry-After, and a typed error for every failure.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import json
import random
import re
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from moorage.mirror import errors as e
from moorage.mirror.reference import ExternalReference
from moorage.mirror.ssrf import SsrfGuard
from moorage.oci import mediatypes as mt

MANIFEST_ACCEPT = ", ".join(
    [
        mt.OCI_INDEX,
        mt.OCI_MANIFEST,
        mt.DOCKER_MANIFEST_LIST,
        mt.DOCKER_MANIFEST,
        mt.OCI_ARTIFACT_MANIFEST,
    ]
)
REDIRECTS = {301, 302, 303, 307, 308}
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_REDIRECTS = 5
BACKOFF_BASE_SECONDS = 0.5  # first retry after ~0.5 s, then doubling (jittered), up to the cap
# A broken blob transfer that still delivered this much earns its retries back: a flaky link
# that drops a large layer every few hundred MB completes instead of failing after 4 drops.
RESUME_PROGRESS_BYTES = 1024 * 1024
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None = None
    password: str | None = None

    @property
    def present(self) -> bool:
        return bool(self.username)


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    payload: bytes
    media_type: str
    digest: str | None  # Docker-Content-Digest as sent by upstream (verified by the caller)


class UpstreamClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        reference: ExternalReference,
        credentials: Credentials,
        *,
        insecure_http_fallback: bool = False,
        ssrf: SsrfGuard | None = None,
        attempts: int = 4,
        max_retry_wait: float = 30.0,
        max_manifest_size: int = 10 * 1024 * 1024,
    ) -> None:
        self.http = http
        self.reference = reference
        self.credentials = credentials
        self.insecure_http_fallback = insecure_http_fallback
        self.ssrf = ssrf
        self.attempts = attempts
        self.max_retry_wait = max_retry_wait
        self.max_manifest_size = max_manifest_size
        self.base = f"https://{reference.authority}"
        self._tokens: dict[str, tuple[str, float]] = {}
        self._basic = False
        self._resolved = False

    # --- URLs --------------------------------------------------------------------------------
    def _url(self, suffix: str) -> str:
        return f"{self.base}/v2/{self.reference.path}/{suffix}"

    @property
    def scope(self) -> str:
        return f"repository:{self.reference.path}:pull"

    # --- connection set-up ---------------------------------------------------------------------
    async def ping(self) -> None:
        """GET /v2/ once: pick https (or http when TLS verification is off) and learn auth."""
        if self._resolved:
            return
        try:
            await self._send("GET", f"{self.base}/v2/", allow_statuses={401})
        except (e.UpstreamConnectionError, e.UpstreamTLSError):
            if not self.insecure_http_fallback:
                raise
            self.base = f"http://{self.reference.authority}"
            await self._send("GET", f"{self.base}/v2/", allow_statuses={401})
        self._resolved = True

    # --- API -----------------------------------------------------------------------------------
    async def list_tags(self) -> list[str]:
        await self.ping()
        url: str | None = self._url("tags/list") + "?" + urlencode({"n": 1000})
        tags: list[str] = []
        pages = 0
        while url and pages < 10_000:
            response = await self._send("GET", url)
            pages += 1
            try:
                body = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise e.UpstreamProtocolError("tag list is not JSON") from exc
            page = body.get("tags") if isinstance(body, dict) else None
            if page is not None and not isinstance(page, list):
                raise e.UpstreamProtocolError("tag list has no tags array")
            tags.extend(str(t) for t in page or [])
            url = _next_link(response, url)
        return tags

    async def head_manifest(self, reference: str) -> str | None:
        """The upstream digest of a tag (free on Docker Hub), or None if not advertised."""
        await self.ping()
        response = await self._send(
            "HEAD", self._url(f"manifests/{reference}"), headers={"Accept": MANIFEST_ACCEPT}
        )
        digest = response.headers.get("docker-content-digest")
        return str(digest) if digest else None

    async def get_manifest(self, reference: str) -> FetchedManifest:
        await self.ping()
        response = await self._send(
            "GET", self._url(f"manifests/{reference}"), headers={"Accept": MANIFEST_ACCEPT}
        )
        if len(response.content) > self.max_manifest_size:
            raise e.UpstreamProtocolError(
                f"Manifest exceeds size limit: {len(response.content)} bytes"
            )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return FetchedManifest(
            response.content, media_type, response.headers.get("docker-content-digest")
        )

    async def stream_blob(self, digest: str) -> AsyncIterator[bytes]:
        """Yield the blob's bytes; a broken transfer resumes with a Range request."""
        await self.ping()
        received = 0
        failures = 0
        while True:
            headers = {"Range": f"bytes={received}-"} if received else {}
            response = await self._send(
                "GET", self._url(f"blobs/{digest}"), headers=headers, stream=True
            )
            attempt_from = received
            try:
                if received and response.status_code != 206:
                    raise e.UpstreamProtocolError("upstream cannot resume a blob download")
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    yield chunk
                return
            except httpx.TransportError as exc:
                if received - attempt_from >= RESUME_PROGRESS_BYTES:
                    failures = 0
                failures += 1
                if failures >= self.attempts:
                    raise _map_transport(exc) from exc
                await asyncio.sleep(_backoff(failures, None, self.max_retry_wait))
            finally:
                await response.aclose()

    # --- the request loop ------------------------------------------------------------------------
    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        allow_statuses: set[int] | None = None,
    ) -> httpx.Response:
        failures = 0
        refreshed = False
        while True:
            try:
                response = await self._follow(method, url, dict(headers or {}), stream)
            except (httpx.TransportError, e.UpstreamError) as exc:
                mapped = _map_transport(exc) if isinstance(exc, httpx.TransportError) else exc
                failures += 1
                if isinstance(mapped, e.UpstreamTLSError) or failures >= self.attempts:
                    raise mapped from exc
                await asyncio.sleep(_backoff(failures, None, self.max_retry_wait))
                continue
            status = response.status_code
            if status < 300 or status == 206 or status in (allow_statuses or set()):
                return response
            await _drain(response, stream)
            if status == 401 and not refreshed:
                refreshed = True
                if await self._authenticate(response):
                    continue
            if status in RETRY_STATUSES:
                failures += 1
                if failures < self.attempts:
                    await asyncio.sleep(_backoff(failures, response, self.max_retry_wait))
                    continue
            raise _status_error(status, method, url)

    async def _follow(
        self, method: str, url: str, headers: dict[str, str], stream: bool
    ) -> httpx.Response:
        auth_host = urlsplit(self.base).netloc
        for _ in range(MAX_REDIRECTS + 1):
            send_headers = dict(headers)
            if urlsplit(url).netloc == auth_host:
                send_headers.update(self._auth_header())
            request = self.http.build_request(method, url, headers=send_headers)
            response = await self.http.send(request, stream=stream)
            if response.status_code not in REDIRECTS:
                return response
            await _drain(response, stream)
            location = response.headers.get("location")
            if not location:
                raise e.UpstreamProtocolError("redirect without Location")
            url = urljoin(url, location)
            target = urlsplit(url)
            if self.ssrf is not None and target.netloc != auth_host and target.hostname:
                try:
                    await self.ssrf.check_url_host(target.hostname, target.port)
                except Exception as exc:
                    raise e.SourceNotAllowed(
                        f"upstream redirected to a location that is not allowed: {target.hostname}"
                    ) from exc
        raise e.UpstreamProtocolError("too many redirects")

    def _auth_header(self) -> dict[str, str]:
        token = self._tokens.get(self.scope)
        if token and token[1] > time.monotonic():
            return {"Authorization": f"Bearer {token[0]}"}
        if self._basic and self.credentials.present:
            pair = f"{self.credentials.username}:{self.credentials.password or ''}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        return {}

    async def _authenticate(self, response: httpx.Response) -> bool:
        """React to a 401 challenge. True when a retry may now succeed."""
        challenge = response.headers.get("www-authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if not self.credentials.present or self._basic:
                raise e.UpstreamAuthError("upstream requires credentials")
            self._basic = True
            return True
        if scheme != "bearer":
            raise e.UpstreamAuthError("upstream sent an unsupported authentication challenge")
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if not realm:
            raise e.UpstreamProtocolError("bearer challenge without realm")
        await self._fetch_token(realm, params.get("service"))
        return True

    async def _fetch_token(self, realm: str, service: str | None) -> None:
        query = {"scope": self.scope}
        if service:
            query["service"] = service
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        target = urlsplit(url)
        if (
            self.ssrf is not None
            and target.hostname
            and target.netloc != urlsplit(self.base).netloc
        ):
            await self.ssrf.check_url_host(target.hostname, target.port)
        auth = None
        if self.credentials.present:
            auth = httpx.BasicAuth(self.credentials.username or "", self.credentials.password or "")
        response = await self._token_request(url, auth)
        if response.status_code in {401, 403}:
            raise e.UpstreamAuthError("upstream token service refused our credentials")
        if response.status_code == 429:
            raise e.UpstreamRateLimited("upstream token service rate limit persisted")
        if 500 <= response.status_code <= 599:
            raise e.UpstreamUnavailable(f"token service answered {response.status_code}")
        if response.status_code != 200:
            raise e.UpstreamProtocolError(f"token service answered {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise e.UpstreamProtocolError("token service answered non-JSON") from exc
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str):
            raise e.UpstreamProtocolError("token service answered without a token")
        lifetime = body.get("expires_in")
        ttl = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 60.0
        self._tokens[self.scope] = (token, time.monotonic() + max(ttl - 10.0, 5.0))

    async def _token_request(self, url: str, auth: httpx.BasicAuth | None) -> httpx.Response:
        """GET the token service; it hiccups like a registry: same retries and Retry-After."""
        failures = 0
        while True:
            try:
                response = await self.http.get(url, auth=auth)
            except httpx.TransportError as exc:
                mapped = _map_transport(exc)
                failures += 1
                if isinstance(mapped, e.UpstreamTLSError) or failures >= self.attempts:
                    raise mapped from exc
                await asyncio.sleep(_backoff(failures, None, self.max_retry_wait))
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            failures += 1
            if failures >= self.attempts:
                return response
            await asyncio.sleep(_backoff(failures, response, self.max_retry_wait))


def _next_link(response: httpx.Response, current: str) -> str | None:
    link = response.headers.get("link")
    if not link:
        return None
    match = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", link)
    return urljoin(current, match.group(1)) if match else None


async def _drain(response: httpx.Response, stream: bool) -> None:
    if stream:
        await response.aclose()


def _backoff(failures: int, response: httpx.Response | None, cap: float) -> float:
    if response is not None:
        retry_after = _retry_after(response.headers.get("retry-after", ""))
        if retry_after is not None:
            return min(retry_after, cap)
    delay = min(cap, BACKOFF_BASE_SECONDS * (2 ** (failures - 1)))
    return float(delay * (0.75 + random.random() / 2))


def _retry_after(value: str) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _status_error(status: int, method: str, url: str) -> e.UpstreamError:
    where = f"{method} {urlsplit(url).path}"
    if status in {401, 403}:
        return e.UpstreamAuthError(f"upstream refused access ({status}) to {where}")
    if status == 404:
        return e.UpstreamNotFound(f"not found upstream: {where}")
    if status == 429:
        return e.UpstreamRateLimited(f"upstream rate limit persisted on {where}")
    if 500 <= status <= 599:
        return e.UpstreamUnavailable(f"upstream answered {status} to {where}")
    return e.UpstreamProtocolError(f"upstream answered {status} to {where}")


def _map_transport(exc: httpx.TransportError) -> e.UpstreamError:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return e.UpstreamTLSError(
                f"TLS failure talking to upstream: {cause.__class__.__name__}"
            )
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return e.UpstreamTimeout("upstream did not answer in time")
    return e.UpstreamConnectionError(f"cannot reach upstream: {exc.__class__.__name__}")
