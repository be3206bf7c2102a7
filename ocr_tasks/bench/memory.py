"""Memory of a spawned stack's processes over a run, sampled from /proc (Linux).

Each named process (web, detect worker, recognize worker, redis) is measured as its whole tree
(a prefork worker is its parent and its children) in proportional set size (PSS, from
``/proc/PID/smaps_rollup``; RSS where that file is missing), so pages that forked children
share with their parent are not counted twice.

Flatness is judged on the run after its first 10% (model loading, allocator pools and
Celery's own caches fill up there): ``growth_pct`` compares the mean of the last tenth of the
samples with the mean of the second tenth.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["process_children", "tree_pids", "tree_memory_mb", "rss_mb", "MemorySampler", "summarize"]


def process_children() -> dict[int, list[int]]:
    """Parent pid -> child pids of every live process (one pass over /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree_pids(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """``pid`` and its live descendants (``children``: a :func:`process_children` map to reuse)."""
    children = process_children() if children is None else children
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _field_kb(path: str, key: str) -> int | None:
    """The kB value of the line starting with ``key`` in a /proc status-style file, if any."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _process_kb(pid: int) -> int:
    pss = _field_kb(f"/proc/{pid}/smaps_rollup", "Pss:")
    return pss if pss is not None else (_field_kb(f"/proc/{pid}/status", "VmRSS:") or 0)


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MiB (0 when it is gone)."""
    return (_field_kb(f"/proc/{pid}/status", "VmRSS:") or 0) / 1024.0


def tree_memory_mb(pid: int, children: dict[int, list[int]] | None = None) -> float:
    """PSS (or RSS) of a process tree in MiB."""
    return sum(_process_kb(p) for p in tree_pids(pid, children)) / 1024.0


class MemorySampler:
    """Samples the memory of named process trees every ``interval`` seconds in a thread.

    Reading ``smaps_rollup`` makes the kernel walk each process's page tables: about 110-130 ms
    of CPU per sample of a real-model stack's 9 processes (4 GiB in all) on the 2-core
    development machine, so :attr:`cpu_seconds` keeps the sampler's own CPU time and the
    report shows it next to the figures it might disturb.
    """

    def __init__(self, pids: dict[str, int], interval: float = 2.0) -> None:
        self.pids = dict(pids)
        self.interval = interval
        self.samples: list[dict[str, float]] = []
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)
        self._t0 = 0.0

    def _sample(self) -> None:
        cpu = time.thread_time()
        row = {"t": round(time.monotonic() - self._t0, 2)}
        children = process_children()  # one /proc pass per sample, shared by every tree
        row.update({name: round(tree_memory_mb(pid, children), 1) for name, pid in self.pids.items()})
        self.samples.append(row)
        self.cpu_seconds += time.thread_time() - cpu

    def summary(self) -> dict[str, Any]:
        """:func:`summarize` of the samples plus the sampler's interval and own CPU time."""
        out = summarize(self.samples)
        if out:
            seconds = max(out["seconds"], 1e-9)
            out.update(
                interval_s=self.interval,
                sampler_cpu_s=round(self.cpu_seconds, 2),
                sampler_cpu_pct=round(100.0 * self.cpu_seconds / seconds, 2),
            )
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._t0 = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()


def summarize(samples: list[dict[str, float]], max_points: int = 120) -> dict[str, Any]:
    """Per process: start, end, max and ``growth_pct`` (last tenth vs second tenth), plus a
    thinned series (at most ``max_points`` samples) for charts."""
    if not samples:
        return {}
    names = [k for k in samples[0] if k != "t"]
    n = len(samples)
    tenth = max(1, n // 10)
    out: dict[str, Any] = {"samples": n, "seconds": samples[-1]["t"], "processes": {}}
    for name in names:
        values = [s[name] for s in samples]
        second = values[tenth: 2 * tenth] or values[:tenth]
        last = values[-tenth:]
        base = sum(second) / len(second)
        end = sum(last) / len(last)
        out["processes"][name] = {
            "start_mb": values[0], "end_mb": values[-1], "max_mb": max(values),
            "second_tenth_mb": round(base, 1), "last_tenth_mb": round(end, 1),
            "growth_pct": round(100.0 * (end - base) / base, 1) if base > 0 else 0.0,
        }
    step = max(1, n // max_points)
    out["series"] = samples[::step]
    return out
