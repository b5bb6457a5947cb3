"""The results table and the Moorage/docker-registry ratios against the issue's goals."""

from __future__ import annotations

import statistics

PHASES = ("big_push", "big_pull", "ds_push", "ds_pull")
PHASE_TITLES = {
    "big_push": "big layer push",
    "big_pull": "big layer pull",
    "ds_push": "dataset push",
    "ds_pull": "dataset pull",
}
# Goals from the issue: wall-time ratio limits, and an absolute peak RSS for the big layer.
TIME_GOALS = {"big_push": 1.0, "big_pull": 1.25, "ds_push": 1.0, "ds_pull": 1.25}
RSS_GOAL_MIB = 200.0
RSS_GOAL_PHASES = ("big_push", "big_pull")
METRICS = (
    ("s", "time s"),
    ("cpu", "CPU s"),
    ("rss", "RSS MiB"),
    ("foreign", "noise s"),
)

Samples = dict[str, dict[str, list[float]]]  # server -> metric -> one value per run


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float]) -> str:
    """Half the min-max range, relative to the median."""
    if len(values) < 2:
        return ""
    mid = median(values)
    return f"±{(max(values) - min(values)) / 2 / mid * 100:.0f}%" if mid else ""


def paired_ratios(samples: Samples, server: str, baseline: str, key: str) -> list[float]:
    """server/baseline per run: both were measured back to back, under the same conditions."""
    return [
        mine / theirs
        for mine, theirs in zip(samples[server][key], samples[baseline][key], strict=True)
        if theirs > 0
    ]


def report(samples: Samples, servers: list[str], baseline: str, runs: int) -> str:
    lines = []
    measured = [p for p in PHASES if f"{p}_s" in samples[baseline]]
    header = f"{'phase':<16}{'metric':<10}" + "".join(f"{s:>24}" for s in servers)
    lines += [header, "-" * len(header)]
    for phase in measured:
        for metric, unit in METRICS:
            key = f"{phase}_{metric}"
            if metric == "foreign":  # spread is meaningless around 0: show the worst sample
                cells = "".join(
                    f"{median(samples[s][key]):>16.2f} {f'max {max(samples[s][key]):.1f}':>7}"
                    for s in servers
                )
            else:
                cells = "".join(
                    f"{median(samples[s][key]):>16.2f} {_spread(samples[s][key]):>7}"
                    for s in servers
                )
            lines.append(f"{PHASE_TITLES[phase]:<16}{unit:<10}{cells}")
    idle = "".join(f"{median(samples[s]['idle_rss']):>16.1f} {'':>7}" for s in servers)
    lines.append(f"{'warm idle':<16}{'RSS MiB':<10}{idle}")
    lines += [
        "",
        "median over runs (± half the min-max range); noise s = CPU time used meanwhile by",
        "other processes on the machine (not the server, not this benchmark and its clients)",
        "",
        f"Ratios vs {baseline}: median of the {runs} per-run ratios [min-max]; goals in brackets",
    ]
    for server in servers:
        if server == baseline:
            continue
        for phase in measured:
            timing = paired_ratios(samples, server, baseline, f"{phase}_s")
            cpu = median(paired_ratios(samples, server, baseline, f"{phase}_cpu"))
            rss = median(paired_ratios(samples, server, baseline, f"{phase}_rss"))
            ratio = median(timing)
            verdict = "ok" if ratio <= TIME_GOALS[phase] else "MISSED"
            line = (
                f"  {server:<18} {PHASE_TITLES[phase]:<15} time {ratio:5.2f}x "
                f"[{min(timing):.2f}-{max(timing):.2f}] "
                f"(goal <= {TIME_GOALS[phase]:.2f}x {verdict})  CPU {cpu:5.2f}x  RSS {rss:5.2f}x"
            )
            if phase in RSS_GOAL_PHASES:
                peak = max(samples[server][f"{phase}_rss"])
                ok = "ok" if peak < RSS_GOAL_MIB else "MISSED"
                line += f"  max peak {peak:.0f} MiB (goal < {RSS_GOAL_MIB:.0f} {ok})"
            lines.append(line)
    return "\n".join(lines)
