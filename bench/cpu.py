"""CPU time of processes, read from /proc: steadier than requests per second on a shared machine.

    meter = CpuMeter([gateway_pid])      # a process and every process it forked
    meter.start(); ...load...; used = meter.stop()   # seconds of user + system CPU

A process tree is read at start() and again at stop(): a worker forked meanwhile counts from its
birth, one that ended meanwhile counts up to its last reading (its parent's cutime is not used:
gunicorn's master outlives the run).
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """The direct children of `pid` (every thread's children)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        out += [int(p) for p in text.split()]
    return out


def tree(pids: list[int]) -> list[int]:
    """`pids` and all their descendants."""
    seen: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo += children(pid)
    return seen


def cpu_of(pid: int) -> float | None:
    """Seconds of user + system CPU `pid` has used (all its threads), None when it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state(0) ppid(1) ... utime(11) stime(12) (fields 14 and 15 of proc(5)).
    return (int(fields[11]) + int(fields[12])) / _TICKS


class CpuMeter:
    """The CPU used between start() and stop() by some processes and their descendants."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = list(roots)
        self._at_start: dict[int, float] = {}
        self.used: dict[int, float] = {}  # by pid, after stop()

    def _read(self) -> dict[int, float]:
        out = {}
        for pid in tree(self.roots):
            used = cpu_of(pid)
            if used is not None:
                out[pid] = used
        return out

    def start(self) -> None:
        self._at_start = self._read()

    def stop(self) -> float:
        now = self._read()
        self.used = {pid: used - self._at_start.get(pid, 0.0) for pid, used in now.items()}
        return max(0.0, sum(self.used.values()))

    def busiest_share(self) -> float | None:
        """After stop(): the share of the CPU its busiest descendant (a gunicorn worker) used
        of what all the roots' descendants used; None with fewer than two of them.

        gunicorn's workers take connections from one shared socket as the kernel wakes them,
        so a burst of keep-alive connections (a load tool's, a proxy's pool) can all land on
        one worker, which then serves the whole run on one CPU while the others idle."""
        workers = [used for pid, used in self.used.items() if pid not in self.roots]
        total = sum(workers)
        if len(workers) < 2 or total <= 0:
            return None
        return max(workers) / total
