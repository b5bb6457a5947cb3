"""Usage logs (the audit log) of a repository or an organization, as Quay's logs API shows them."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from moorage.db.base import utcnow
from moorage.db.engine import Database
from moorage.db.models import AccountKind, AuditLog
from moorage.db.queries.accounts import AccountQueries
from moorage.db.queries.logs import LogQueries
from moorage.db.queries.repositories import RepositoryQueries
from moorage.errors import InvalidRequest, NotFound

LOGS_PER_PAGE = 20
DEFAULT_WINDOW = dt.timedelta(days=7)
DATE_FORMAT = "%m/%d/%Y"


@dataclass(frozen=True, slots=True)
class LogPage:
    start: dt.datetime
    end: dt.datetime
    entries: Sequence[AuditLog]
    next_page: str | None


def parse_date(value: str | None) -> dt.datetime | None:
    """Quay's ``%m/%d/%Y`` (UTC midnight); an empty or malformed value means "not given"."""
    if not value:
        return None
    try:
        return dt.datetime.strptime(value, DATE_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def window(
    starttime: str | None, endtime: str | None, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end): the end day is included whole; by default the last seven days."""
    now = now or utcnow()
    start = parse_date(starttime) or now - DEFAULT_WINDOW
    end = (parse_date(endtime) or now) + dt.timedelta(days=1)
    if end < start:
        raise InvalidRequest("Invalid time span selected")
    return start, end


def encode_page(before_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before_id}).encode()).decode()


def decode_page(token: str | None) -> int | None:
    if not token:
        return None
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["before"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest("Invalid next_page token") from exc


class LogService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def repository_logs(
        self,
        namespace: str,
        name: str,
        starttime: str | None,
        endtime: str | None,
        next_page: str | None,
    ) -> LogPage:
        start, end = window(starttime, endtime)
        before = decode_page(next_page)
        async with self.db.transaction(readonly=True) as session:
            if await RepositoryQueries(session).get(namespace, name) is None:
                raise NotFound("Not Found")
            rows = await LogQueries(session).lookup(
                namespace=namespace,
                repository=name,
                start=start,
                end=end,
                before_id=before,
                limit=LOGS_PER_PAGE + 1,
            )
        return _page(start, end, rows)

    async def organization_logs(
        self, org: str, starttime: str | None, endtime: str | None, next_page: str | None
    ) -> LogPage:
        start, end = window(starttime, endtime)
        before = decode_page(next_page)
        async with self.db.transaction(readonly=True) as session:
            owner = await AccountQueries(session).by_name(org)
            if owner is None or owner.kind != AccountKind.ORGANIZATION:
                raise NotFound("Not Found")
            rows = await LogQueries(session).lookup(
                namespace=org,
                repository=None,
                start=start,
                end=end,
                before_id=before,
                limit=LOGS_PER_PAGE + 1,
            )
        return _page(start, end, rows)


def _page(start: dt.datetime, end: dt.datetime, rows: Sequence[AuditLog]) -> LogPage:
    more = len(rows) > LOGS_PER_PAGE
    rows = rows[:LOGS_PER_PAGE]
    return LogPage(start, end, rows, encode_page(rows[-1].id) if more else None)
