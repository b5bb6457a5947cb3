"""`moorage fsck`: verify every tag → manifest → blob chain, report garbage, optionally repair.

Exit status: 0 when nothing is wrong (after ``--repair``: when nothing is left to repair and
nothing is corrupt), 1 when problems remain. The work itself is services/fsck.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import click

from moorage.config import Settings
from moorage.db.engine import Database
from moorage.services.fsck import FsckOptions, FsckReport, FsckService, Severity
from moorage.storage.factory import build_driver

_COUNTER_EVERY = 1000


class BarProgress:
    """click progress bars on stderr, one per phase; a counter for phases of unknown length."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar: Any = None
        self.label = ""
        self.count = 0

    def begin(self, label: str, total: int | None) -> None:
        self.end()
        self.label, self.count = label, 0
        if total:
            self.bar = click.progressbar(length=total, label=f"{label:<20}", file=self.stream)
            self.bar.__enter__()

    def advance(self, amount: int) -> None:
        if self.bar is not None:
            self.bar.update(amount)
            return
        before, self.count = self.count, self.count + amount
        if before // _COUNTER_EVERY != self.count // _COUNTER_EVERY:
            self.stream.write(f"\r{self.label:<20} {self.count} objects")
            self.stream.flush()

    def end(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        elif self.count >= _COUNTER_EVERY:
            self.stream.write(f"\r{self.label:<20} {self.count} objects\n")
            self.stream.flush()
        self.count = 0


def _size(value: int | None) -> str:
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"  # pragma: no cover - the loop always returns


def render(report: FsckReport) -> str:
    """The human summary: counts, then findings by severity, then the verdict."""
    scope = "whole registry" if report.scope is None else ", ".join(report.scope)
    checked = (
        f"{report.blobs_verified} blobs hashed ({_size(report.bytes_verified)})"
        if report.verify_content
        else f"{report.blobs_verified} blob sizes compared (content not hashed)"
    )
    lines = [
        f"fsck of {scope}: {report.repositories} repositories, {report.tags} tags, "
        f"{report.manifests} manifests, {report.blobs} blobs; {checked}"
        + (
            f"; {report.storage_objects} storage objects, "
            f"{report.staging_in_flight} staging items in flight"
            if report.scope is None
            else ""
        )
        + f" ({report.seconds:.1f} s)"
    ]
    titles = {
        Severity.CORRUPTION: "CORRUPTION (referenced content missing or wrong; never deleted)",
        Severity.GARBAGE: "garbage (removable with --repair; `moorage gc` collects most of it)",
        Severity.NOTICE: "notices",
    }
    for severity in Severity:
        findings = report.of(severity)
        if not findings:
            continue
        lines.append(f"{titles[severity]}: {len(findings)}")
        for finding in findings:
            size = f" [{_size(finding.size)}]" if finding.size is not None else ""
            repair = f" -> {finding.repair}" if finding.repair else ""
            lines.append(f"  {finding.kind:<28} {finding.subject}{size}: {finding.detail}{repair}")
    if report.corrupt_tags:
        lines.append(f"corrupt tags: {len(report.corrupt_tags)}")
    corrupt = len(report.of(Severity.CORRUPTION))
    left = len(report.outstanding) - corrupt
    if report.ok:
        lines.append("result: OK" + (" (after repair)" if report.repair else ""))
    else:
        parts = []
        if corrupt:
            parts.append(f"{corrupt} corruption findings")
        if left:
            parts.append(f"{left} garbage findings" + ("" if report.repair else " (try --repair)"))
        lines.append("result: PROBLEMS: " + ", ".join(parts))
    return "\n".join(lines)


async def _run(
    settings: Settings, options: FsckOptions, progress: BarProgress | None
) -> FsckReport:
    db = Database(settings.database_url)
    storage = build_driver(settings)
    try:
        return await FsckService(db, storage).run(options, progress)
    finally:
        if progress is not None:
            progress.end()
        await storage.close()
        await db.dispose()


def register(main: click.Group, settings_loader: Callable[[Path | None], Settings]) -> None:
    """Attach `fsck` to the main CLI; ``settings_loader(config_path)`` returns Settings."""

    @main.command(
        help="Verify that every tag -> manifest -> blob chain is present and every blob's "
        "content matches its digest; report orphans and staging garbage (--repair removes "
        "them; referenced content that is missing or corrupt is reported, never deleted). "
        "Read-only without --repair; safe while serving. Exit status 0: clean, 1: problems."
    )
    @click.option(
        "--config", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path)
    )
    @click.option(
        "--repair",
        is_flag=True,
        help="Remove garbage: orphan blob bytes, unreferenced blob rows whose bytes are gone or "
        "wrong, stale uploads and staging objects, unfinished storage writes.",
    )
    @click.option(
        "--no-verify-content",
        "--quick",
        "quick",
        is_flag=True,
        help="Compare blob sizes only; do not read and hash blob content.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
    @click.option(
        "--staging-age",
        type=click.IntRange(min=0),
        default=None,
        help="Seconds without activity after which upload sessions and staging objects are "
        "garbage (default: UPLOAD_PURGE_AFTER_SECONDS).",
    )
    @click.option(
        "--repository",
        "repositories",
        multiple=True,
        help="Check only this namespace/name (repeatable); storage and staging are then not "
        "scanned.",
    )
    @click.option(
        "--jobs",
        type=click.IntRange(1, 64),
        default=4,
        show_default=True,
        help="Blobs verified concurrently.",
    )
    @click.option(
        "--progress/--no-progress",
        default=None,
        help="Progress bars on stderr (default: when stderr is a terminal).",
    )
    def fsck(
        config_path: Path | None,
        repair: bool,
        quick: bool,
        as_json: bool,
        staging_age: int | None,
        repositories: tuple[str, ...],
        jobs: int,
        progress: bool | None,
    ) -> None:
        settings = settings_loader(config_path)
        for name in repositories:
            if name.count("/") != 1:
                raise click.BadParameter(f"{name!r}: use namespace/name", param_hint="--repository")
        age = settings.UPLOAD_PURGE_AFTER_SECONDS if staging_age is None else staging_age
        options = FsckOptions(
            verify_content=not quick,
            repair=repair,
            staging_age=dt.timedelta(seconds=age),
            repositories=list(repositories) or None,
            jobs=jobs,
        )
        show = sys.stderr.isatty() if progress is None else progress
        report = asyncio.run(_run(settings, options, BarProgress(sys.stderr) if show else None))
        if repositories and report.repositories < len(set(repositories)):
            click.echo("warning: some --repository names do not exist", err=True)
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=2))
        else:
            click.echo(render(report))
        sys.exit(0 if report.ok else 1)
