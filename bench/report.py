"""What `make bench` prints at the end: the table of rows (medians over the rounds), the
targets (MET / MISSED), the per-doctor rows against the hospital-level ones, the bookings'
statuses and the capacity checks."""

from __future__ import annotations

from bench.load import MAX_REMEASURED, ONE_WORKER_SHARE
from bench.rounds import PROXIED_TRIVIAL_ROW, TRIVIAL_ROW, Result, Summary

BOOKING_ROW = "appointments POST"
DOCTOR_SUFFIX = " (doctor)"
DOCTOR_WITHIN = 0.90  # a per-doctor read row's ratio >= 0.90 x the hospital-level row's
ROW_WIDTH = 30  # "availability/bulk(60) (doctor)"

# (name, row, target, minimum ratio to the trivial app's req/s)
RATIO_TARGETS = (
    ("available via gateway >= 0.35 x trivial", "available", "gateway", 0.35),
    ("calendar?days=60 via gateway >= 0.30 x trivial", "calendar?days=60", "gateway", 0.30),
    ("bulk(60) via gateway >= 0.30 x trivial", "availability/bulk(60)", "gateway", 0.30),
    ("bookings via gateway >= 0.12 x trivial", BOOKING_ROW, "gateway", 0.12),
)
# (name, (row, target, CPU role), (row, target, CPU role) it is compared with, maximum
# quotient of their CPU per request)
CPU_TARGETS = (
    (
        "gateway CPU/request (available) <= 1.25 x minimal Caddy's",
        ("available", "gateway", "gateway"),
        ("available", "minimal", "gateway"),
        1.25,
    ),
    (
        "schedule CPU/request (available, direct) <= 1.4 x trivial app's",
        ("available", "direct", "service"),
        (TRIVIAL_ROW, "direct", "service"),
        1.4,
    ),
)


def fmt_statuses(s: Summary) -> str:
    parts = [f"{c}:{n}" for c, n in sorted(s.statuses.items()) if not c.startswith("2")]
    if s.socket_errors:
        parts.append(f"socket:{s.socket_errors}")
    return " ".join(parts) or "-"


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(summaries: list[Summary], prev: dict | None) -> list[str]:
    """The rows: medians of req/s, latencies, ratio to trivial and CPU per request (gateway:
    the gateway's process, or the minimal Caddy's; service: the one that answers the row)."""
    prev_rows = (prev or {}).get("rows", {})
    head = (
        f"{'row':<{ROW_WIDTH}} {'target':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'x trivial':>9} {'prev x':>7} {'gw us/req':>9} {'svc us/req':>10} {'2xx':>7} non-2xx"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        ok = sum(n for c, n in s.statuses.items() if c.startswith("2"))
        ok_text = str(ok) if s.statuses else str(s.requests - s.non_2xx)
        prev_ratio = prev_rows.get(s.key, {}).get("ratio") if s.ratio is not None else None
        lines.append(
            f"{s.row:<{ROW_WIDTH}} {s.target:<8} {s.rps:>8.1f} {s.p50_ms:>7.2f} "
            f"{s.p99_ms:>7.2f} {_num(s.ratio, '.3f'):>9} "
            f"{_num(prev_ratio, '.3f'):>7} "
            f"{_num(s.cpu_us.get('gateway'), '.0f'):>9} {_num(s.cpu_us.get('service'), '.0f'):>10}"
            f" {ok_text:>7} {fmt_statuses(s)}"
        )
    return lines


def doctor_ratios(summaries: list[Summary]) -> list[dict]:
    """Each per-doctor row's ratio to trivial over that of its hospital-level row (same
    target)."""
    by = {(s.row, s.target): s for s in summaries}
    out = []
    for s in summaries:
        base = by.get((s.row.removesuffix(DOCTOR_SUFFIX), s.target))
        if not s.row.endswith(DOCTOR_SUFFIX) or base is None:
            continue
        mine, theirs = s.ratio or 0.0, base.ratio or 0.0
        out.append(
            {
                "row": s.row,
                "target": s.target,
                "x_trivial": round(mine, 3),
                "hospital_x_trivial": round(theirs, 3),
                "ratio": round(mine / theirs, 3) if theirs else 0.0,
                "read": not s.row.startswith(BOOKING_ROW),
            }
        )
    return out


def _target(name: str, value: float | None, met: bool) -> dict:
    """A target; `value` None: its rows did not run (BENCH_ROWS), neither met nor missed."""
    if value is None:
        return {"target": name, "value": None, "met": None}
    return {"target": name, "value": round(value, 3), "met": met}


def targets(summaries: list[Summary]) -> list[dict]:
    by = {(s.row, s.target): s for s in summaries}

    def ratio(row: str, target: str) -> float | None:
        s = by.get((row, target))
        return None if s is None else (s.ratio or 0.0)

    def cpu(row: str, target: str, role: str) -> float | None:
        s = by.get((row, target))
        return None if s is None else s.cpu_us.get(role)

    out = []
    for name, row, target, minimum in RATIO_TARGETS:
        value = ratio(row, target)
        out.append(_target(name, value, value is not None and value >= minimum))
    for name, mine, base, maximum in CPU_TARGETS:
        num, den = cpu(*mine), cpu(*base)
        value = num / den if num is not None and den else None
        out.append(_target(name, value, value is not None and value <= maximum))
    cal1, cal60 = ratio("calendar?days=1", "gateway"), ratio("calendar?days=60", "gateway")
    rel = cal60 / cal1 if cal1 and cal60 is not None else None
    out.append(
        _target("calendar?days=60 >= 0.5 x calendar?days=1 (gateway)", rel, (rel or 0) >= 0.5)
    )
    for d in doctor_ratios(summaries):
        if d["read"]:
            name = f"{d['row']} within 10% of hospital-level ({d['target']})"
            out.append(_target(name, d["ratio"], d["ratio"] >= DOCTOR_WITHIN))
    return out


def target_line(t: dict) -> str:
    if t["met"] is None:
        return f"  SKIP   {t['target']}: its rows did not run"
    value = t["value"]
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    return f"  {'MET   ' if t['met'] else 'MISSED'} {t['target']}: {text}"


def cpu_lines(summaries: list[Summary]) -> list[str]:
    """The two CPU comparisons, with the figures they are made of."""
    by = {(s.row, s.target): s for s in summaries}
    lines = []
    for name, mine, base, _ in CPU_TARGETS:
        a, b = by.get(mine[:2]), by.get(base[:2])
        if a is None or b is None:
            continue
        num, den = a.cpu_us.get(mine[2]), b.cpu_us.get(base[2])
        lines.append(
            f"  {name.split(' <=')[0]}: {_num(num, '.0f')} us vs {_num(den, '.0f')} us "
            f"({a.key} {mine[2]} / {b.key} {base[2]})"
        )
    return lines


def ceiling_lines(summaries: list[Summary]) -> list[str]:
    """The ceiling of the ratios through a proxy: the trivial app behind a minimal Caddy."""
    s = next((s for s in summaries if s.row == PROXIED_TRIVIAL_ROW), None)
    if s is None or s.ratio is None:
        return []
    return [
        f"  ceiling: the trivial app behind a minimal Caddy does {s.ratio:.3f} x itself direct "
        f"(caddy {_num(s.cpu_us.get('gateway'), '.0f')} us + app "
        f"{_num(s.cpu_us.get('service'), '.0f')} us a request): no row through a proxy "
        "does better on this machine"
    ]


def booking_lines(summaries: list[Summary]) -> list[str]:
    lines = []
    for s in summaries:
        if not s.row.startswith(BOOKING_ROW):
            continue
        created, full = s.statuses.get("201", 0), s.statuses.get("409", 0)
        lines.append(
            f"{s.row} via {s.target}: {created} x 201, {full} x 409 seen by the load tool "
            f"({s.rounds} rounds)"
        )
        if full > 0.25 * max(1, s.requests):
            lines.append(
                "  warning: over a quarter refused as full: the slots ran out, so this row "
                "measures refusals; lower BENCH_BOOKING_SECONDS or BENCH_ROUNDS"
            )
    return lines


def check_lines(checks: list[dict]) -> list[str]:
    lines = []
    for check in checks:
        lines.append(
            f"after {check['after']}: {check['confirmed_total']} confirmed on "
            f"{check['dates_checked']} dates, statuses {check['statuses']}"
        )
        if check["overbooked"]:
            lines.append(
                f"  OVERBOOKED: {len(check['overbooked'])} slots: {check['overbooked'][:10]}"
            )
        if check["duplicate_serials"]:
            lines.append(f"  DUPLICATE SERIALS: {check['duplicate_serials'][:10]}")
        if check["availability_mismatches"]:
            lines.append(
                f"  warning: {len(check['availability_mismatches'])} slots where availability "
                f"counts differ from confirmed appointments: "
                f"{check['availability_mismatches'][:5]}"
            )
    ok = all(c["ok"] for c in checks)
    if not checks:
        lines.append("capacity check: no booking row ran")
    else:
        lines.append(
            "capacity check: "
            + (
                "OK, no slot holds more confirmed appointments than its capacity"
                if ok
                else "FAILED"
            )
        )
    return lines


def one_worker_note(r: Result) -> str:
    """What the line says of a run where one gunicorn worker took the connections."""
    note = f"{r.remeasured} run(s) on one worker before" if r.remeasured else ""
    if r.busiest_share is not None and r.busiest_share > ONE_WORKER_SHARE:
        note = f"one worker: {r.busiest_share:.0%}" + (f"; {note}" if note else "")
    return f"  ({note})" if note else ""


def one_worker_lines(results: list[Result]) -> list[str]:
    """What the run says of the runs where one gunicorn worker took every connection."""
    remeasured = sum(r.remeasured for r in results)
    kept = sum(1 for r in results if (r.busiest_share or 0) > ONE_WORKER_SHARE)
    if not remeasured and not kept:
        return []
    return [
        f"{remeasured} run(s) measured again because one gunicorn worker took every "
        f"connection; {kept} run(s) kept so (booking rows, or after {MAX_REMEASURED} tries)"
    ]
