"""The mirror benchmark's table, and the Moorage ratios against the issue's goals."""

from __future__ import annotations

import statistics

PHASES = ("cold", "noop")
PHASE_TITLES = {"cold": "cold sync", "noop": "no-op re-sync"}
# Goals from the issue: Moorage's time / skopeo sync's time, per phase; worker peak RSS.
TIME_GOALS = {"cold": 0.5, "noop": 0.5}
GOAL_BASELINE = "skopeo-sync"
RSS_GOAL_MIB = 250.0
METRICS = (("s", "time s"), ("cpu", "CPU s"), ("rss", "RSS MiB"))
EXTRA = (
    ("dest_cpu", "dest CPU s", "CPU of the destination docker-registry (skopeo methods)"),
    ("upstream_cpu", "upstream CPU s", "CPU of the upstream docker-registry"),
    ("noise", "noise CPU s", "CPU used meanwhile by other processes on the machine"),
)
MOORAGE_DETAIL = (
    ("run_s", "worker run s", "the sync itself, by the worker's clock (claim -> outcome)"),
    (
        "claim_s",
        "wait+record s",
        "the rest: sync-now -> claim (separate worker: next poll, 0-1 s) + release + our GET",
    ),
)

Samples = dict[str, dict[str, list[float]]]  # tool -> metric -> one value per run


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def paired(samples: Samples, tool: str, baseline: str, key: str) -> list[float]:
    """tool/baseline per run: measured back to back, under the same conditions."""
    return [
        mine / theirs
        for mine, theirs in zip(samples[tool][key], samples[baseline][key], strict=True)
        if theirs > 0
    ]


def report(title: str, samples: Samples, tools: list[str]) -> str:
    lines = [title, ""]
    header = f"{'phase':<15}{'metric':<15}" + "".join(f"{t:>28}" for t in tools)
    lines += [header, "-" * len(header)]
    moorages = [t for t in tools if t.startswith("moorage")]
    others = [t for t in tools if t not in moorages]
    for phase in PHASES:
        for metric, unit in METRICS:
            key = f"{phase}_{metric}"
            cells = "".join(f"{_fmt(samples[t].get(key, [])):>28}" for t in tools)
            lines.append(f"{PHASE_TITLES[phase]:<15}{unit:<15}{cells}")
        for detail, unit, _ in EXTRA + MOORAGE_DETAIL:
            key = f"{phase}_{detail}"
            if any(samples[t].get(key) for t in tools):
                cells = "".join(f"{_fmt(samples[t].get(key, [])):>28}" for t in tools)
                lines.append(f"{'':<15}{unit:<15}{cells}")
    lines += [
        "",
        "median [min-max] over runs. RSS/CPU: moorage = the `moorage serve` process (API + its",
        "worker); moorage-worker = the `moorage worker` process alone (API in another process);",
        "skopeo = peak RSS of the largest skopeo process, CPU of all of them.",
    ]
    lines += [f"  {unit}: {text}" for _, unit, text in EXTRA + MOORAGE_DETAIL]
    if not moorages or not others:
        return "\n".join(lines)
    lines += ["", "Ratios Moorage/other (wall time): median of the per-run ratios [min-max]"]
    for tool in moorages:
        for baseline in others:
            for phase in PHASES:
                ratios = paired(samples, tool, baseline, f"{phase}_s")
                if not ratios:
                    continue
                line = (
                    f"  {tool:<15} / {baseline:<12} {PHASE_TITLES[phase]:<14} "
                    f"{median(ratios):5.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
                )
                if baseline == GOAL_BASELINE:
                    verdict = "ok" if median(ratios) <= TIME_GOALS[phase] else "MISSED"
                    line += f"  (goal <= {TIME_GOALS[phase]:.2f}x: {verdict})"
                lines.append(line)
    for tool in moorages:
        peaks = [v for p in PHASES for v in samples[tool].get(f"{p}_rss", [])]
        if peaks:
            verdict = "ok" if max(peaks) < RSS_GOAL_MIB else "MISSED"
            what = (
                "worker process"
                if tool.startswith("moorage-worker")
                else "serve process (API+worker)"
            )
            lines.append(
                f"  {tool:<15} peak RSS of the {what}: max {max(peaks):.0f} MiB over all "
                f"syncs (goal < {RSS_GOAL_MIB:.0f} MiB for the worker: {verdict})"
            )
    return "\n".join(lines)


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"
