"""Peak resident memory and CPU time of a server process (and its children) during a workload.

CPU time is utime+stime from /proc/PID/stat, before and after. For the peak RSS, two
sources, the larger wins:

* the kernel's own high-water mark, ``VmHWM``, reset before each phase by writing ``5`` to
  ``/proc/PID/clear_refs`` (Linux >= 4.0; we own the process, so this is allowed);
* a sampler thread reading ``VmRSS`` of the process and all its descendants at ~20 Hz, which
  also covers servers that fork workers (whose RSS the parent's HWM does not include).
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

KIB = 1024
SAMPLE_INTERVAL = 0.05


def _status_kib(pid: int, field: str) -> int:
    """``field`` (VmRSS, VmHWM, ...) of /proc/PID/status in KiB; 0 if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (via /proc/PID/task/*/children)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        tasks = Path(f"/proc/{current}/task")
        try:
            entries = list(tasks.iterdir())
        except OSError:
            continue
        for task in entries:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            found.extend(int(child) for child in children if int(child) not in found)
    return found


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, including its reaped children."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rpartition(")")[2].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    return sum(_cpu_seconds(p) for p in descendants(pid))


def system_busy_seconds() -> float:
    """CPU time all CPUs spent not idle since boot (user..steal, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process plus its reaped children (curl, skopeo)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def wait_until_quiet(max_busy_cores: float, timeout: float, window: float = 1.0) -> float:
    """Wait (at most ``timeout`` s) until the machine's busy CPUs over ``window`` s drop to
    ``max_busy_cores``; return the last measured busy cores. Other people's work on a shared
    machine is the main source of noise, so each measured phase starts in a quiet moment."""
    if timeout <= 0:
        return 0.0
    deadline = time.monotonic() + timeout
    while True:
        start_busy, start_own = system_busy_seconds(), own_cpu_seconds()
        time.sleep(window)
        busy = system_busy_seconds() - start_busy - (own_cpu_seconds() - start_own)
        cores = busy / window
        if cores <= max_busy_cores or time.monotonic() >= deadline:
            return cores


def tree_rss_kib(pid: int) -> int:
    return sum(_status_kib(p, "VmRSS") for p in descendants(pid))


def reset_hwm(pid: int) -> None:
    """Reset VmHWM of the process tree to the current RSS (best effort)."""
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            Path(f"/proc/{p}/clear_refs").write_text("5")


@dataclass
class MemoryPeak:
    peak_kib: int = 0
    samples: int = 0
    cpu_seconds: float = 0.0
    # CPU used meanwhile by everything except the server and this benchmark (other users of
    # the machine, the hypervisor's steal): a noise indicator for the sample.
    foreign_cpu_seconds: float = 0.0

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / KIB


class PeakRss:
    """Context manager: ``with PeakRss(pid) as peak: ...`` then read ``peak.peak_mib``.

    The sampler is a daemon thread that stops when the block exits (or after
    ``max_seconds``, so a forgotten monitor never outlives its measurement).
    """

    def __init__(self, pid: int, max_seconds: float = 3600.0) -> None:
        self.pid = pid
        self.max_seconds = max_seconds
        self.result = MemoryPeak()
        self._cpu_start = self._busy_start = self._own_start = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            rss = tree_rss_kib(self.pid)
            self.result.samples += 1
            self.result.peak_kib = max(self.result.peak_kib, rss)
            self._stop.wait(SAMPLE_INTERVAL)

    def __enter__(self) -> MemoryPeak:
        reset_hwm(self.pid)
        self._cpu_start = tree_cpu_seconds(self.pid)
        self._busy_start = system_busy_seconds()
        self._own_start = own_cpu_seconds()
        self._thread.start()
        return self.result

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        hwm = sum(_status_kib(p, "VmHWM") for p in descendants(self.pid))
        self.result.peak_kib = max(self.result.peak_kib, hwm)
        self.result.cpu_seconds = tree_cpu_seconds(self.pid) - self._cpu_start
        busy = system_busy_seconds() - self._busy_start
        own = own_cpu_seconds() - self._own_start
        self.result.foreign_cpu_seconds = max(busy - own - self.result.cpu_seconds, 0.0)
