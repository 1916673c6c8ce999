"""What one run of a row measured (Result) and the arithmetic of the bench's rounds (pure
functions, no I/O).

A round measures every row between two runs of the trivial app (trivial, row, trivial, row,
..., trivial): a row's ratio is its req/s over the mean of the trivial runs either side, and
the figures reported are the medians over the rounds. CPU per request is the CPU seconds the
processes used over the run, over the requests completed, in microseconds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

TRIVIAL_ROW = "trivial /ping"
PROXIED_TRIVIAL_ROW = "trivial /ping (proxied)"  # behind a minimal Caddy: the ceiling


def cpu_per_request(cpu_seconds: float | None, requests: int) -> float | None:
    """Microseconds of CPU per completed request; None without a reading or a request."""
    if cpu_seconds is None or requests <= 0:
        return None
    return cpu_seconds / requests * 1e6


@dataclass
class Result:
    """One run of a row: what the load tool saw, and the CPU (seconds, by role: "gateway",
    "service") the processes behind it used meanwhile."""

    row: str
    target: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    socket_errors: int
    non_2xx: int
    round: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    ratio: float | None = None  # req/s over the mean of the trivial runs either side
    # Runs of a read row thrown away because one gunicorn worker of the service took every
    # connection (bench/load.py, measure), and that worker's share in this one.
    remeasured: int = 0
    busiest_share: float | None = None

    def cpu_us(self, role: str) -> float | None:
        """Microseconds of CPU per completed request of `role`'s processes (None: not read)."""
        return cpu_per_request(self.cpu.get(role), self.requests)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def ratio_to_trivial(rps: float, before: float | None, after: float | None) -> float | None:
    """`rps` over the mean of the trivial runs before and after it (one of them alone when the
    other is missing); None without a trivial run to compare with."""
    base = [x for x in (before, after) if x]
    if not base:
        return None
    return rps / (sum(base) / len(base))


def is_trivial(run: Result) -> bool:
    return run.row == TRIVIAL_ROW


def assign_ratios(sequence: Sequence[Result]) -> None:
    """Set each row's `ratio` from the nearest trivial runs before and after it in `sequence`
    (the runs of one round, in the order they ran); trivial runs keep None."""
    for i, run in enumerate(sequence):
        if is_trivial(run):
            continue
        before = next((r.rps for r in reversed(sequence[:i]) if is_trivial(r)), None)
        after = next((r.rps for r in sequence[i + 1 :] if is_trivial(r)), None)
        run.ratio = ratio_to_trivial(run.rps, before, after)


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def spread(values: Sequence[float]) -> float:
    """(max - min) / max: how far apart runs of the same thing are (0 for fewer than two)."""
    if len(values) < 2 or max(values) <= 0:
        return 0.0
    return (max(values) - min(values)) / max(values)


@dataclass
class Summary:
    """One row over its rounds: medians of req/s, ratio, latencies and CPU per request (µs, by
    role), sums of requests and statuses."""

    row: str
    target: str
    rounds: int
    rps: float
    ratio: float | None
    p50_ms: float
    p99_ms: float
    requests: int
    statuses: dict[str, int]
    socket_errors: int
    non_2xx: int
    cpu_us: dict[str, float] = field(default_factory=dict)
    ratios: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.row} [{self.target}]"

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def summarize(runs: Iterable[Result]) -> list[Summary]:
    """One Summary per (row, target), in the order each first ran."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for run in runs:
        groups.setdefault((run.row, run.target), []).append(run)
    out = []
    for (row, target), group in groups.items():
        statuses: dict[str, int] = {}
        for run in group:
            for code, n in run.statuses.items():
                statuses[code] = statuses.get(code, 0) + n
        roles = sorted({role for run in group for role in run.cpu})
        cpu_us = {
            role: value
            for role in roles
            if (value := median(cpu_per_request(run.cpu.get(role), run.requests) for run in group))
            is not None
        }
        ratios = [run.ratio for run in group if run.ratio is not None]
        out.append(
            Summary(
                row=row,
                target=target,
                rounds=len(group),
                rps=median(run.rps for run in group) or 0.0,
                ratio=median(ratios),
                p50_ms=median(run.p50_ms for run in group) or 0.0,
                p99_ms=median(run.p99_ms for run in group) or 0.0,
                requests=sum(run.requests for run in group),
                statuses=statuses,
                socket_errors=sum(run.socket_errors for run in group),
                non_2xx=sum(run.non_2xx for run in group),
                cpu_us=cpu_us,
                ratios=[round(r, 4) for r in ratios],
                rates=[round(run.rps, 1) for run in group],
            )
        )
    return out
