"""`python -m bench`: start a stack, load each endpoint through the gateway and directly,
compare with a trivial Flask app, check that no slot is overbooked, and record the results.

Rows: for gomoti and for the doctor of a copy of it (rows "... (doctor)"): available,
calendar?days=1/7/60 and availability/bulk(60), each via the gateway and directly; available
via a minimal Caddy (the same caddy binary, a bare reverse_proxy: bench/minimal.py), and with
it the trivial app behind a minimal Caddy of its own (the ceiling of every ratio through a
proxy); and
bookings (POST /api/appointments) via the gateway and directly, into hospitals of their own
(bench/hospitals.py), each followed by a capacity check.

Rounds: every row is measured between two runs of the trivial app (trivial, row, trivial, row,
..., trivial); a row's ratio is its req/s over the mean of the trivial runs either side, and
the figures reported are the medians over BENCH_ROUNDS rounds (bench/rounds.py). Beside the
ratios: the CPU per request (us) of the gateway (the caddy process), of the service that
answers the row (its gunicorn master and workers) and of the trivial app (bench/cpu.py).
Each row is compared with the perf budget, bench/budget.json (bench/budget.py): rows more than
10% worse are printed (the exit status does not change). The exit status is 1 when a slot
holds more confirmed appointments than its capacity, else 0.

Settings (environment):
  BENCH_SECONDS          seconds per row (default 6)
  BENCH_BOOKING_SECONDS  seconds per booking row (default BENCH_SECONDS)
  BENCH_TRIVIAL_SECONDS  seconds per run of the trivial app, before and after each row (3)
  BENCH_WARMUP           seconds of warm-up before each read row and the first trivial run,
                         in the first round only (default 1; booking rows have none)
  BENCH_ROUNDS           rounds; the figures are the medians over them (default 3)
  BENCH_ROWS             comma-separated substrings of row names: only the rows whose name
                         holds one run (the trivial app always), e.g. available,appointments
  BENCH_RECORD           1: write this run's figures as the new budget (bench/budget.json;
                         with BENCH_ROWS, only the rows that ran are replaced)
  BENCH_STREAMS          live streams held through the gateway in all (default 10000; 0: the
                         live-streams part is skipped)
  BENCH_STREAM_STORM     how many of them are opened at once first (default 2000)
  BENCH_CONNECTIONS      load generator connections (default 16)
  BENCH_LOAD_THREADS     load generator threads (wrk) or processes (python) (default 2)
  BENCH_WORKERS, BENCH_THREADS  gunicorn workers and threads of every service (2, 4)
  BENCH_ENGINE           wrk or python (default wrk when on PATH)
  MONGO_URL, REDIS_URL   use these databases instead of embedded ones
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import budget
from bench import streams as live_bench
from bench.hospitals import (
    DOCTOR,
    DOCTOR_HOSPITAL,
    admin_token,  # bench/streams.py imports it from here
    booking_pattern,
    check_capacity,
    create_doctor_hospital,
    plan,
    verdict,
)
from bench.load import (
    Result,
    Settings,
    Spec,
    load_worker,
    measure,
)
from bench.minimal import MinimalCaddy
from bench.report import (
    ROW_WIDTH,
    booking_lines,
    ceiling_lines,
    check_lines,
    cpu_lines,
    doctor_ratios,
    one_worker_lines,
    one_worker_note,
    table,
    target_line,
    targets,
)
from bench.rounds import (
    TRIVIAL_ROW,
    Summary,
    assign_ratios,
    is_trivial,
    spread,
    summarize,
)
from bench.rows import TRIVIAL_SPEC, Row, build_rows, pids
from devstack.run import raise_open_files_limit
from devstack.servers import ServiceProcess
from devstack.stack import Stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def busy_others() -> float:
    """The 1-minute load average: more than ~1 before the run means someone else is busy."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def previous_run(engine: str) -> dict | None:
    """The last recorded run made with the same load engine."""
    path = RESULTS_DIR / "history.jsonl"
    if not path.exists():
        return None
    for line in reversed(path.read_text().splitlines()):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("engine") == engine:
            return entry
    return None


def estimate_minutes(settings: Settings, rows: list[Row]) -> float:
    """Minutes of load the rounds take (not counting start-up, checks and streams)."""
    per_round = (
        sum(settings.booking_seconds if r.booking else settings.seconds for r in rows)
        + (len(rows) + 1) * settings.trivial_seconds
    )
    warmups = sum(1 for r in rows if not r.booking) * settings.warmup + settings.warmup
    return (per_round * settings.rounds + warmups) / 60


def progress(r: Result) -> None:
    """One run's line, as it ends."""
    gw, svc = r.cpu_us("gateway"), r.cpu_us("service")
    refused = sum(n for c, n in r.statuses.items() if not c.startswith("2"))
    print(
        f"  {r.row:<{ROW_WIDTH}} {r.target:<8} {r.rps:>8.1f} req/s  "
        f"p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms  cpu us/req "
        f"gw {'-' if gw is None else f'{gw:.0f}'} svc {'-' if svc is None else f'{svc:.0f}'}"
        f"  non-2xx {refused or '-'}{one_worker_note(r)}",
        flush=True,
    )


def run_rounds(
    settings: Settings,
    stack: Stack,
    token: str,
    trivial: ServiceProcess,
    rows: list[Row],
    salt: int,
    workdir: Path,
) -> tuple[list[Result], list[dict]]:
    """Every round: trivial, row, trivial, row, ..., trivial; a booking row books into the
    next run of its plan's slots and is followed by a capacity check of those dates."""
    results: list[Result] = []
    checks: list[dict] = []
    for round_no in range(1, settings.rounds + 1):
        print(f"bench: round {round_no}/{settings.rounds}", flush=True)
        first = round_no == 1
        trivial_row = Row(TRIVIAL_SPEC, "direct", trivial.url, {"service": pids(trivial)})
        sequence = [
            measure_row(settings, trivial_row, salt, workdir, round_no, warmup=first),
        ]
        for row in rows:
            if row.booking is None:
                sequence.append(measure_row(settings, row, salt, workdir, round_no, first))
            else:
                chunk_no = (round_no - 1) * 2 + (0 if row.target == "gateway" else 1)
                chunk = row.booking["chunks"][chunk_no]
                if not chunk:
                    print(f"  {row.spec.row} via {row.target}: no slot left for this round")
                    continue
                spec = Spec(
                    **{**row.spec.__dict__, "slots": booking_pattern(chunk), "tag": chunk_no % 100}
                )
                # No warm-up: every booking counts toward the capacity check below.
                sequence.append(measure_row(settings, row, salt, workdir, round_no, False, spec))
                time.sleep(0.5)  # in-flight bookings cut off by the load tool finish
                t0 = time.monotonic()
                check = check_capacity(stack, token, row.booking, [d for d, _ in chunk])
                check["after"] = f"{row.spec.row} via {row.target} (round {round_no})"
                checks.append(check)
                print(
                    f"  capacity check after {check['after']}: {verdict(check)} "
                    f"[{time.monotonic() - t0:.1f} s]",
                    flush=True,
                )
            sequence.append(measure_row(settings, trivial_row, salt, workdir, round_no, False))
        assign_ratios(sequence)
        results += sequence
    return results, checks


def measure_row(
    settings: Settings,
    row: Row,
    salt: int,
    workdir: Path,
    round_no: int,
    warmup: bool,
    spec: Spec | None = None,
) -> Result:
    """One run of `row` (with `spec` instead of the row's own, for a booking row)."""
    if row.booking is not None:
        seconds = settings.booking_seconds
    elif row.spec.row == TRIVIAL_ROW:
        seconds = settings.trivial_seconds
    else:
        seconds = settings.seconds
    r = measure(
        row.base,
        row.target,
        spec or row.spec,
        settings,
        salt,
        workdir,
        warmup,
        seconds,
        row.meters,
        round_no,
    )
    progress(r)
    return r


def record_results(
    settings: Settings,
    started: datetime,
    commit: str | None,
    summaries: list[Summary],
    results: list[Result],
    found: dict,
) -> None:
    """bench/results/latest.json (everything) and a line of history.jsonl (the figures)."""
    summary = {
        "timestamp": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "engine": settings.engine,
        "seconds": settings.seconds,
        "rounds": settings.rounds,
        "connections": settings.connections,
        "rows": {
            s.key: {
                "rps": round(s.rps, 1),
                **({"ratio": round(s.ratio, 3)} if s.ratio is not None else {}),
                **{f"{role}_us": round(v, 1) for role, v in s.cpu_us.items()},
            }
            for s in summaries
        },
        "targets": {t["target"]: t["met"] for t in found["targets"]},
        "capacity_ok": found["capacity_ok"],
        "load_before": found["load_before"],
        "live_streams": found["live"],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    latest = {
        **summary,
        "settings": settings.__dict__,
        "summaries": [s.as_dict() for s in summaries],
        "results": [r.as_dict() for r in results],
        **{k: found[k] for k in ("targets", "doctor_ratios", "capacity_checks", "dead")},
    }
    (RESULTS_DIR / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    with open(RESULTS_DIR / "history.jsonl", "a") as fh:
        fh.write(json.dumps(summary, separators=(",", ":")) + "\n")
    print(f"results: {RESULTS_DIR / 'latest.json'}")


def budget_step(settings: Settings, started: datetime, commit: str | None, summaries) -> None:
    """Compare with the budget, or (BENCH_RECORD=1) record this run's figures as the budget."""
    now = budget.figures(summaries)
    if not settings.record:
        print("\n".join(budget.report(budget.load(), now, settings.engine)))
        return
    rows = now
    if settings.rows:  # only some rows ran: keep the others' recorded figures
        rows = {**(budget.load() or {}).get("rows", {}), **now}
    meta = {
        "recorded": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "engine": settings.engine,
        "seconds": settings.seconds,
        "rounds": settings.rounds,
        "connections": settings.connections,
        "gunicorn": f"{settings.workers}x{settings.threads}",
    }
    budget.record(rows, meta)
    print(f"budget: recorded {len(now)} rows in {budget.BUDGET_PATH}")


def run(settings: Settings, workdir: Path) -> int:
    salt = int(time.time()) % 100
    stamp = int(time.time())
    extra_env = {"ACCESS_LOG_LEVEL": "WARNING", "BOOKING_LIMIT": "1000000"}
    raise_open_files_limit()  # inherited by the stack's processes: thousands of streams
    started = datetime.now(UTC)
    load_before = busy_others()
    print(
        f"bench: engine={settings.engine} seconds={settings.seconds:g} "
        f"booking_seconds={settings.booking_seconds:g} trivial_seconds="
        f"{settings.trivial_seconds:g} warmup={settings.warmup:g} rounds={settings.rounds} "
        f"connections={settings.connections} load_threads={settings.load_threads} "
        f"gunicorn={settings.workers}x{settings.threads}"
        + (f" rows={','.join(settings.rows)}" if settings.rows else ""),
        flush=True,
    )
    if settings.engine != "wrk":
        print("bench: wrk not found; using the slower Python engine (apt-get install wrk)")
    stack = Stack(
        workdir / "stack",
        mongo_url=os.environ.get("MONGO_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        workers=settings.workers,
        threads=settings.threads,
        extra_env=extra_env,
    )
    trivial = ServiceProcess(
        "trivial",
        "bench.trivial:create_app()",
        workdir / "logs",
        env={"PYTHONPATH": str(ROOT)},
        workers=settings.workers,
        threads=settings.threads,
    )
    minimal: MinimalCaddy | None = None
    proxy: MinimalCaddy | None = None
    live: dict | None = None
    with stack:
        trivial.start()
        try:
            print(
                f"bench: stack up (gateway {stack.gateway_url}) after "
                f"{(datetime.now(UTC) - started).total_seconds():.0f} s",
                flush=True,
            )
            token = admin_token(stack.gateway_url)
            made = create_doctor_hospital(stack.gateway_url, token)
            print(f"bench: hospital {DOCTOR_HOSPITAL} with doctor {DOCTOR!r}: {made}", flush=True)
            if settings.selects("available"):
                minimal = MinimalCaddy(workdir, stack.schedule_url).start()
                print(f"bench: minimal Caddy {minimal.url} -> {stack.schedule_url}", flush=True)
                proxy = MinimalCaddy(workdir, trivial.url, label="minimal-caddy-trivial").start()
                print(f"bench: minimal Caddy {proxy.url} -> {trivial.url}", flush=True)
            proxied = (trivial, proxy) if proxy is not None else None
            rows = build_rows(settings, stack, token, minimal, stamp, proxied)
            if not rows:
                print(f"bench: BENCH_ROWS={','.join(settings.rows)} selects no row")
            print(
                f"bench: {len(rows)} rows x {settings.rounds} rounds, about "
                f"{estimate_minutes(settings, rows):.1f} minutes of load",
                flush=True,
            )
            results, checks = run_rounds(settings, stack, token, trivial, rows, salt, workdir)
            if settings.streams > 0:
                doctor_plan = plan(stack, DOCTOR_HOSPITAL, DOCTOR)
                live = live_streams(stack, token, doctor_plan, settings)
            dead = stack.dead_processes()
            dead += [c.name for c in (minimal, proxy) if c is not None and not c.running]
        finally:
            trivial.stop()
            for caddy in (minimal, proxy):
                if caddy is not None:
                    caddy.stop()

    summaries = summarize(results)
    prev = previous_run(settings.engine)
    found_targets = targets(summaries)
    print()
    print("\n".join(table(summaries, prev)))
    trivial_rates = [r.rps for r in results if is_trivial(r)]
    noise = spread(trivial_rates)
    print(
        f"medians of {settings.rounds} rounds; a row's ratio is to the mean of the trivial runs "
        f"either side (trivial: {len(trivial_rates)} runs, {min(trivial_rates, default=0):.0f}"
        f"..{max(trivial_rates, default=0):.0f} req/s); us/req: CPU per request"
    )
    if noise > 0.15 or load_before > 1.0:
        print(
            f"warning: noisy machine (trivial runs differ by {noise:.0%}, load average "
            f"{load_before:.2f} before the start): other processes share the CPU, so treat "
            "the figures with care"
        )
    for line in one_worker_lines(results):
        print(line)
    if prev:
        print(f"(prev x = ratio in the previous run, {prev.get('timestamp')} {prev.get('commit')})")
    print()
    if lines := cpu_lines(summaries) + ceiling_lines(summaries):
        print("CPU per request (medians):")
        print("\n".join(lines))
    for t in found_targets:
        print(target_line(t))
    print()
    doctors = doctor_ratios(summaries)
    if doctors:
        print("per-doctor rows / hospital-level rows (x trivial, same target):")
    for d in doctors:
        print(
            f"  {d['row']:<{ROW_WIDTH}} {d['target']:<8} {d['x_trivial']:>6.3f} / "
            f"{d['hospital_x_trivial']:>6.3f} = {d['ratio']:.3f}"
        )
    if doctors:
        print()
    for line in booking_lines(summaries) + check_lines(checks):
        print(line)
    capacity_ok = all(c["ok"] for c in checks)
    if live:
        print("live streams (bench/streams.py):")
        print("\n".join(live_bench.summary(live)))
        stream_targets = live_bench.targets(live)
        found_targets += stream_targets
        for t in stream_targets:
            print(target_line(t))
    if dead:
        print(f"warning: processes died during the run: {dead}")
    print()
    commit = git_commit()
    budget_step(settings, started, commit, summaries)
    found = {
        "targets": found_targets,
        "doctor_ratios": doctors,
        "capacity_checks": checks,
        "capacity_ok": capacity_ok,
        "load_before": load_before,
        "live": live,
        "dead": dead,
    }
    record_results(settings, started, commit, summaries, results, found)
    print(f"bench: done in {(datetime.now(UTC) - started).total_seconds() / 60:.1f} minutes")
    return 0 if capacity_ok else 1


def live_streams(stack: Stack, token: str, p: dict, settings: Settings) -> dict:
    """Streams of the bench hospital's own queue (no row books there) on its first open day
    after today: `stream_storm` opened at once, bookings into it timed on each, then
    `streams` held in all (bench/streams.py)."""
    day = min(d for d, _ in p["slots"])
    slots = [s for d, s in p["slots"] if d == day]
    bodies = [
        {
            "hospital_id": p["hospital"],
            "date": day,
            "slot": slots[i % len(slots)],
            "patient": {"name": "Stream Bench", "phone": f"+88019{i:08d}"},
        }
        for i in range(5)
    ]
    print(
        f"bench: live streams: {settings.stream_storm} at once, {settings.streams} held",
        flush=True,
    )
    return live_bench.measure_streams(
        stack,
        token,
        p["hospital"],
        day,
        bodies,
        storm=min(settings.stream_storm, settings.streams),
        hold=settings.streams,
    )


def _terminate(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    if sys.argv[1:] == ["--load-worker"]:
        return load_worker()
    signal.signal(signal.SIGTERM, _terminate)
    settings = Settings()
    if settings.engine == "wrk" and not shutil.which("wrk"):
        sys.exit("bench: BENCH_ENGINE=wrk but wrk is not on PATH")
    workdir = Path(tempfile.mkdtemp(prefix="slotbook-bench-"))
    keep = True
    try:
        code = run(settings, workdir)
        keep = False
        return code
    except KeyboardInterrupt:
        print("\nbench: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        if keep:
            print(f"bench: logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
