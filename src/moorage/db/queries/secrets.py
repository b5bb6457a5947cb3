"""Columns encrypted at rest (auth.crypto.FieldCipher), for `moorage admin rotate-secret-key`.

``ENCRYPTED`` lists every such column. A new encrypted column must be added here, or key
rotation would leave it under the old key (tests/functional/test_key_rotation.py checks that
every ``.encrypt(`` call site is known).

Rows are read in primary-key order (keyset pages, so an interrupted run resumes cheaply), and a
value is replaced only if it still holds the ciphertext that was read: a credential changed
through the API in between is never overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.models import MirrorConfig, Repository


@dataclass(frozen=True, slots=True)
class EncryptedTable:
    """A table with encrypted columns, and how to name one of its rows for an operator."""

    what: str  # e.g. "mirror" (a row is then reported as "mirror <label>")
    model: Any  # the ORM class; its primary key is ``id``
    columns: tuple[str, ...]
    label: tuple[Any, ...]  # columns (possibly of ``join``) joined with "/" to name a row
    join: tuple[Any, ColumnElement[bool]] | None = None


ENCRYPTED: tuple[EncryptedTable, ...] = (
    EncryptedTable(
        what="mirror",
        model=MirrorConfig,
        columns=("external_registry_username", "external_registry_password"),
        label=(Repository.namespace, Repository.name),
        join=(Repository, Repository.id == MirrorConfig.repository_id),
    ),
)


@dataclass(frozen=True, slots=True)
class SealedRow:
    id: int
    label: str
    values: dict[str, str | None]


class SecretQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _any_sealed(spec: EncryptedTable) -> ColumnElement[bool]:
        return or_(*(getattr(spec.model, c).is_not(None) for c in spec.columns))

    async def count(self, spec: EncryptedTable) -> int:
        """Rows of ``spec`` holding at least one encrypted value."""
        stmt = select(func.count()).select_from(spec.model).where(self._any_sealed(spec))
        return int((await self.session.execute(stmt)).scalar_one())

    async def page(self, spec: EncryptedTable, after_id: int, limit: int) -> Sequence[SealedRow]:
        """Up to ``limit`` rows with an encrypted value and an id above ``after_id``, by id."""
        stmt: Select[Any] = select(
            spec.model.id, *spec.label, *(getattr(spec.model, c) for c in spec.columns)
        ).select_from(spec.model)
        if spec.join is not None:
            stmt = stmt.outerjoin(*spec.join)
        stmt = (
            stmt.where(spec.model.id > after_id, self._any_sealed(spec))
            .order_by(spec.model.id)
            .limit(limit)
        )
        rows = []
        width = len(spec.label)
        for row in (await self.session.execute(stmt)).all():
            parts = [str(part) for part in row[1 : 1 + width] if part is not None]
            label = "/".join(parts) or f"#{row[0]}"
            values = dict(zip(spec.columns, row[1 + width :], strict=True))
            rows.append(SealedRow(id=int(row[0]), label=label, values=values))
        return rows

    async def replace(
        self, spec: EncryptedTable, row_id: int, column: str, old: str, new: str
    ) -> bool:
        """Set ``column`` to ``new`` if it still holds ``old``; False if it changed meanwhile."""
        target = getattr(spec.model, column)
        stmt = (
            update(spec.model)
            .where(spec.model.id == row_id, target == old)
            .values({column: new})
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        return bool(result.rowcount)  # type: ignore[attr-defined]
