"""Re-encrypt every credential stored at rest with the current DATABASE_SECRET_KEY.

The procedure (docs/operations.md, "Rotating DATABASE_SECRET_KEY"): every node runs with the
new key as DATABASE_SECRET_KEY and the old one in DATABASE_SECRET_KEY_PREVIOUS, then this runs
once; afterwards no value needs the old key and it can be removed from the configuration.

- **Batches, one transaction each**: rows are read in id order, ``batch_size`` at a time; each
  batch is read and rewritten in one short transaction, so other writers wait at most one batch.
- **Idempotent and resumable**: a value the current key already opens is left alone, so a run
  that was interrupted (or a second run) only touches what still needs it.
- **Never overwrites a concurrent change**: a value is replaced only if it still holds the
  ciphertext that was read (``changed`` counts the others; they were written meanwhile, by a
  node with the current key if the procedure was followed — a second run checks them).
- **Unreadable values** (no configured key opens them) are reported by row and column, never
  by content, and left unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from moorage.auth.crypto import DecryptionFailure, FieldCipher
from moorage.db.engine import Database
from moorage.db.queries.secrets import ENCRYPTED, EncryptedTable, SecretQueries

log = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 100


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A value no configured key decrypts: ``what`` names the row, ``column`` the field."""

    what: str
    column: str


@dataclass(slots=True)
class RotationReport:
    dry_run: bool
    rows: int = 0  # rows holding at least one encrypted value, looked at
    values: int = 0  # encrypted values looked at
    rotated: int = 0  # re-encrypted with the current key (dry run: would be)
    current: int = 0  # already encrypted with the current key
    changed: int = 0  # changed by another writer between read and write; left to that writer
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every value is (dry run: would be) under the current key."""
        return not self.unreadable and not self.changed


class KeyRotation:
    def __init__(
        self,
        db: Database,
        cipher: FieldCipher,
        batch_size: int = DEFAULT_BATCH_SIZE,
        tables: tuple[EncryptedTable, ...] = ENCRYPTED,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.db = db
        self.cipher = cipher
        self.batch_size = batch_size
        self.tables = tables

    async def total_rows(self) -> int:
        """Rows holding an encrypted value (the length of a progress bar)."""
        async with self.db.transaction(readonly=True) as session:
            queries = SecretQueries(session)
            return sum([await queries.count(spec) for spec in self.tables])

    async def run(
        self, *, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> RotationReport:
        """Re-encrypt every value not under the current key; ``progress(rows)`` per batch."""
        report = RotationReport(dry_run=dry_run)
        for spec in self.tables:
            after_id = 0
            while True:
                done, after_id = await self._batch(spec, after_id, report)
                if progress is not None and done:
                    progress(done)
                if done < self.batch_size:
                    break
        log.info(
            "key rotation%s: %d values in %d rows, %d re-encrypted, %d already current, "
            "%d changed meanwhile, %d unreadable",
            " (dry run)" if dry_run else "",
            report.values,
            report.rows,
            report.rotated,
            report.current,
            report.changed,
            len(report.unreadable),
        )
        return report

    async def _batch(
        self, spec: EncryptedTable, after_id: int, report: RotationReport
    ) -> tuple[int, int]:
        """One page in one transaction; returns (rows seen, last id)."""
        async with self.db.transaction(readonly=report.dry_run) as session:
            queries = SecretQueries(session)
            rows = await queries.page(spec, after_id, self.batch_size)
            for row in rows:
                report.rows += 1
                for column, stored in row.values.items():
                    if stored is None:
                        continue
                    report.values += 1
                    try:
                        fresh = self.cipher.reseal(stored)
                    except DecryptionFailure:
                        report.unreadable.append(Unreadable(f"{spec.what} {row.label}", column))
                        continue
                    if fresh is None:
                        report.current += 1
                    elif report.dry_run or await queries.replace(
                        spec, row.id, column, stored, fresh
                    ):
                        report.rotated += 1
                    else:
                        report.changed += 1
        return len(rows), (rows[-1].id if rows else after_id)
