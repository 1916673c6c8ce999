"""The perf budget: a recorded figure per row (bench/budget.json, committed), that every run
is compared with.

Per row ("available [gateway]"): the CPU per request (µs) of the gateway (`gateway_us`) and
of the service that answers it (`service_us`), and its req/s over the trivial app's (`ratio`).
A row is flagged when it is more than TOLERANCE worse on any of them (CPU higher, ratio
lower). Flags are printed, never fail the run (machines are noisy). `BENCH_RECORD=1` writes
the current run's figures as the new budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.rounds import Summary

BUDGET_PATH = Path(__file__).resolve().parent / "budget.json"
TOLERANCE = 0.10
# (figure, its name in the output, True when higher is worse)
METRICS = (
    ("gateway_us", "gateway CPU us/req", True),
    ("service_us", "service CPU us/req", True),
    ("ratio", "x trivial", False),
)


@dataclass(frozen=True)
class Flag:
    """A row's figure that is more than the tolerance worse than recorded."""

    row: str
    metric: str
    recorded: float
    now: float

    @property
    def change(self) -> float:
        """now / recorded - 1 (+0.15: 15% more than recorded)."""
        return self.now / self.recorded - 1

    def describe(self) -> str:
        name = next(label for metric, label, _ in METRICS if metric == self.metric)
        spec = ".3f" if self.metric == "ratio" else ".0f"
        return (
            f"{self.row}: {name} recorded {self.recorded:{spec}}, now {self.now:{spec}} "
            f"({self.change:+.0%})"
        )


def figures(summaries: list[Summary]) -> dict[str, dict[str, float]]:
    """The budget's figures of a run, per row key; a figure the run did not read is left out."""
    out: dict[str, dict[str, float]] = {}
    for s in summaries:
        row: dict[str, float] = {}
        if (value := s.cpu_us.get("gateway")) is not None:
            row["gateway_us"] = round(value, 1)
        if (value := s.cpu_us.get("service")) is not None:
            row["service_us"] = round(value, 1)
        if s.ratio is not None:
            row["ratio"] = round(s.ratio, 4)
        if row:
            out[s.key] = row
    return out


def compare(
    recorded: dict[str, dict[str, float]],
    now: dict[str, dict[str, float]],
    tolerance: float = TOLERANCE,
    ratios: bool = True,
) -> list[Flag]:
    """Every figure of `now` more than `tolerance` worse than its recorded one (rows or
    figures missing on either side are not compared; nor ratios when `ratios` is False)."""
    flags = []
    for row, values in now.items():
        budget = recorded.get(row)
        if not budget:
            continue
        for metric, _, higher_is_worse in METRICS:
            if metric == "ratio" and not ratios:
                continue
            old, new = budget.get(metric), values.get(metric)
            if old is None or new is None or old <= 0:
                continue
            worse = new > old * (1 + tolerance) if higher_is_worse else new < old * (1 - tolerance)
            if worse:
                flags.append(Flag(row, metric, old, new))
    return flags


def load(path: Path | None = None) -> dict | None:
    """The recorded budget (default bench/budget.json), None when there is none (or it
    cannot be read)."""
    try:
        return json.loads((path or BUDGET_PATH).read_text())
    except (OSError, ValueError):
        return None


def record(rows: dict[str, dict[str, float]], meta: dict, path: Path | None = None) -> dict:
    """Write `rows` (with `meta`: when, commit, engine, settings) as the new budget (default
    bench/budget.json)."""
    budget = {**meta, "tolerance": TOLERANCE, "rows": rows}
    (path or BUDGET_PATH).write_text(json.dumps(budget, indent=2) + "\n")
    return budget


def report(budget: dict | None, now: dict[str, dict[str, float]], engine: str) -> list[str]:
    """The lines that say how the run compares with the budget."""
    if not budget:
        return [f"budget: none recorded ({BUDGET_PATH.name}); BENCH_RECORD=1 records this run's"]
    same_engine = budget.get("engine") == engine
    flags = compare(budget.get("rows", {}), now, budget.get("tolerance", TOLERANCE), same_engine)
    head = (
        f"budget ({BUDGET_PATH.name}, recorded {budget.get('recorded')} "
        f"{budget.get('commit') or ''} with {budget.get('engine')}): "
    )
    lines = []
    if not same_engine:
        lines.append(
            f"budget: recorded with {budget.get('engine')}, this run with {engine}: "
            "ratios not compared, CPU only"
        )
    missing = sorted(set(now) - set(budget.get("rows", {})))
    if not flags:
        lines.append(head + f"every row within {TOLERANCE:.0%}")
    else:
        rows = sorted({f.row for f in flags})
        lines.append(head + f"{len(rows)} rows more than {TOLERANCE:.0%} worse:")
        lines += [f"  BUDGET {flag.describe()}" for flag in flags]
    if missing:
        lines.append(f"  (not in the budget: {', '.join(missing)})")
    return lines
