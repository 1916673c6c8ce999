"""The bench's settings and its load engines: wrk (a Lua script per row) where it is on PATH,
else processes of Python threads (`python -m bench --load-worker`). `measure` runs one row and
reads the CPU the processes behind it used meanwhile (bench/cpu.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

from bench.cpu import CpuMeter
from bench.rounds import Result

HOSPITAL = "gomoti"
# A run where one gunicorn worker used more than this share of the service's CPU is measured
# again, at most MAX_REMEASURED times (measure()).
ONE_WORKER_SHARE = 0.85
MAX_REMEASURED = 3
ROOT = Path(__file__).resolve().parent.parent


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def env_list(name: str) -> list[str]:
    """A comma-separated setting: its non-empty items, stripped."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


@dataclass
class Settings:
    seconds: float = field(default_factory=lambda: env_float("BENCH_SECONDS", 6.0))
    # The booking rows book into hospitals of their own, each row into slots of its own.
    booking_seconds: float = field(
        default_factory=lambda: env_float("BENCH_BOOKING_SECONDS", env_float("BENCH_SECONDS", 6.0))
    )
    # The trivial app's runs, before and after every row (the ratios' base).
    trivial_seconds: float = field(default_factory=lambda: env_float("BENCH_TRIVIAL_SECONDS", 3.0))
    warmup: float = field(default_factory=lambda: env_float("BENCH_WARMUP", 1.0))
    rounds: int = field(default_factory=lambda: max(1, env_int("BENCH_ROUNDS", 3)))
    # Substrings of row names: only the rows whose name holds one run (the trivial app always).
    rows: list[str] = field(default_factory=lambda: env_list("BENCH_ROWS"))
    record: bool = field(default_factory=lambda: os.environ.get("BENCH_RECORD", "") == "1")
    # The live streams (bench/streams.py): how many to hold in all, how many to open at once
    # (a booking's event is timed on these).
    streams: int = field(default_factory=lambda: env_int("BENCH_STREAMS", 10000))
    stream_storm: int = field(default_factory=lambda: env_int("BENCH_STREAM_STORM", 2000))
    connections: int = field(default_factory=lambda: env_int("BENCH_CONNECTIONS", 16))
    load_threads: int = field(default_factory=lambda: env_int("BENCH_LOAD_THREADS", 2))
    workers: int = field(default_factory=lambda: env_int("BENCH_WORKERS", 2))
    threads: int = field(default_factory=lambda: env_int("BENCH_THREADS", 4))
    engine: str = field(
        default_factory=lambda: (
            os.environ.get("BENCH_ENGINE", "").strip()
            or ("wrk" if shutil.which("wrk") else "python")
        )
    )

    def selects(self, row: str) -> bool:
        """True when BENCH_ROWS is unset or names a part of `row`."""
        return not self.rows or any(part in row for part in self.rows)


@dataclass
class Spec:
    """One kind of request. `slots` set: each request books a new phone into the next slot."""

    row: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    slots: list[tuple[str, str]] | None = None
    tag: int = 0  # two digits that keep the phones of different booking rows apart
    hospital: str = HOSPITAL  # bookings: the hospital and doctor they go to
    practitioner: str | None = None


def doctor_query(practitioner: str | None) -> dict[str, str]:
    """The query (or body) fields that ask for one doctor; none for the hospital itself."""
    return {"practitioner_id": practitioner} if practitioner else {}


def booking_head(hospital: str, practitioner: str | None) -> str:
    """The start of a booking's JSON body (shared by both engines): who it is booked with."""
    head = {"hospital_id": hospital, **doctor_query(practitioner)}
    return json.dumps(head, separators=(",", ":"))[:-1] + ","


def booking_body(
    slot: tuple[str, str],
    idx: int,
    tag: int,
    salt: int,
    hospital: str = HOSPITAL,
    practitioner: str | None = None,
) -> str:
    """A booking of a phone unique to (run salt, tag, idx) into `slot` of the hospital (or of
    its doctor `practitioner`)."""
    day, start = slot
    phone = f"+8801{salt:02d}{tag:02d}{idx:07d}"
    return booking_head(hospital, practitioner) + (
        f'"date":"{day}","slot":"{start}",'
        f'"patient":{{"name":"Bench Patient {idx}","phone":"{phone}"}},"reason":"bench"}}'
    )


# ---------------------------------------------------------------- wrk engine

WRK_LUA = r"""
local spec_method = %(method)s
local spec_body = %(body)s
local spec_headers = %(headers)s
local slots = %(slots)s
local tag = %(tag)d
local salt = %(salt)d
local booking_head = %(booking_head)s
local threads = {}

wrk.method = spec_method
if spec_body then wrk.body = spec_body end
for k, v in pairs(spec_headers) do wrk.headers[k] = v end

function setup(thread)
  thread:set("tid", #threads)
  thread:set("nthreads", %(nthreads)d)
  table.insert(threads, thread)
end

if slots then
  counter = 0
  statuses = {}
  request = function()
    local idx = counter * nthreads + tid
    counter = counter + 1
    local s = slots[(idx %% #slots) + 1]
    local body = booking_head .. string.format(
      '"date":"%%s","slot":"%%s",' ..
      '"patient":{"name":"Bench Patient %%d","phone":"+8801%%02d%%02d%%07d"},"reason":"bench"}',
      s[1], s[2], idx, salt, tag, idx)
    return wrk.format(nil, nil, nil, body)
  end
  response = function(status, headers, body)
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

done = function(summary, latency, requests)
  local st = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do st[k] = (st[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(st) do table.insert(parts, string.format('"%%s":%%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,"statuses":{%%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ",")))
end
"""


def lua_str(value: str | None) -> str:
    return "nil" if value is None else json.dumps(value)  # JSON strings are valid Lua strings


def lua_script(spec: Spec, settings: Settings, salt: int) -> str:
    headers = "{" + ", ".join(f"[{lua_str(k)}] = {lua_str(v)}" for k, v in spec.headers.items())
    slots = "nil"
    if spec.slots:
        slots = "{" + ", ".join(f"{{{lua_str(d)}, {lua_str(s)}}}" for d, s in spec.slots) + "}"
    return WRK_LUA % {
        "method": lua_str(spec.method),
        "body": lua_str(spec.body),
        "headers": headers + "}",
        "slots": slots,
        "tag": spec.tag,
        "salt": salt,
        "nthreads": max(1, min(settings.load_threads, settings.connections)),
        "booking_head": lua_str(booking_head(spec.hospital, spec.practitioner)),
    }


def run_wrk(
    base: str, spec: Spec, seconds: float, settings: Settings, salt: int, workdir: Path
) -> dict:
    script = workdir / f"row-{abs(hash((spec.row, spec.path, spec.tag)))}.lua"
    script.write_text(lua_script(spec, settings, salt))
    nthreads = max(1, min(settings.load_threads, settings.connections))
    cmd = [
        "wrk",
        f"-t{nthreads}",
        f"-c{settings.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base + spec.path,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        raise RuntimeError(f"wrk gave no result (code {out.returncode}):\n{out.stdout}{out.stderr}")
    statuses = raw["statuses"]
    non_2xx = raw["status"]
    if statuses:
        non_2xx = sum(n for code, n in statuses.items() if not code.startswith("2"))
    return {
        "requests": raw["requests"],
        "seconds": raw["duration_us"] / 1e6,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "statuses": statuses or ({"non-2xx": non_2xx} if non_2xx else {}),
        "socket_errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        "non_2xx": non_2xx,
    }


# ------------------------------------------------------------- python engine
# Used only where wrk is missing: processes of threads with keep-alive connections.
# Python on the same 2 cores costs far more CPU per request than wrk, so the numbers are
# lower and the ratios compressed; the output says which engine ran.


def _py_worker(args: tuple) -> dict:
    host, port, spec, deadline, conn_ids, total_conns, salt = args
    lat: list[float] = []
    statuses: Counter[str] = Counter()
    errors = [0]
    lock = threading.Lock()

    def one_connection(conn_id: int) -> None:
        conn = HTTPConnection(host, port, timeout=10)
        i = 0
        my_lat: list[float] = []
        my_st: Counter[str] = Counter()
        while time.monotonic() < deadline:
            body = spec.body
            if spec.slots:
                idx = i * total_conns + conn_id
                slot = spec.slots[idx % len(spec.slots)]
                body = booking_body(slot, idx, spec.tag, salt, spec.hospital, spec.practitioner)
            i += 1
            t0 = time.perf_counter()
            try:
                conn.request(spec.method, spec.path, body=body, headers=spec.headers)
                resp = conn.getresponse()
                resp.read()
            except OSError:
                with lock:
                    errors[0] += 1
                conn.close()
                conn = HTTPConnection(host, port, timeout=10)
                continue
            my_lat.append(time.perf_counter() - t0)
            my_st[str(resp.status)] += 1
        conn.close()
        with lock:
            lat.extend(my_lat)
            statuses.update(my_st)

    threads = [threading.Thread(target=one_connection, args=(c,)) for c in conn_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"lat": lat, "statuses": dict(statuses), "errors": errors[0]}


def run_python(base: str, spec: Spec, seconds: float, settings: Settings, salt: int) -> dict:
    """Load from child processes (`python -m bench --load-worker`), each with threads."""
    parts = urlsplit(base)
    nproc = max(1, min(settings.load_threads, settings.connections))
    conns = list(range(settings.connections))
    start = time.monotonic()
    procs = []
    try:
        for p in range(nproc):
            job = {
                "host": parts.hostname,
                "port": parts.port,
                "spec": asdict(spec),
                "seconds": seconds,
                "conn_ids": conns[p::nproc],
                "total_conns": len(conns),
                "salt": salt,
            }
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench", "--load-worker"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append((proc, json.dumps(job)))
        outs = [json.loads(proc.communicate(job, timeout=seconds + 60)[0]) for proc, job in procs]
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - start
    lat = sorted(x for o in outs for x in o["lat"])
    statuses: Counter[str] = Counter()
    for o in outs:
        statuses.update(o["statuses"])

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, math.ceil(q / 100 * len(lat)) - 1)] * 1000 if lat else 0.0

    return {
        "requests": len(lat),
        "seconds": elapsed,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "statuses": dict(statuses),
        "socket_errors": sum(o["errors"] for o in outs),
        "non_2xx": sum(n for code, n in statuses.items() if not code.startswith("2")),
    }


def load_worker() -> int:
    """`python -m bench --load-worker`: one job (JSON on stdin), result JSON on stdout."""
    job = json.load(sys.stdin)
    spec_fields = job["spec"]
    if spec_fields.get("slots"):
        spec_fields["slots"] = [tuple(x) for x in spec_fields["slots"]]
    spec = Spec(**spec_fields)
    deadline = time.monotonic() + job["seconds"]
    args = (job["host"], job["port"], spec, deadline, job["conn_ids"], job["total_conns"])
    json.dump(_py_worker((*args, job["salt"])), sys.stdout)
    return 0


def measure(
    base: str,
    target: str,
    spec: Spec,
    settings: Settings,
    salt: int,
    workdir: Path,
    warmup: bool = True,
    seconds: float | None = None,
    meters: dict[str, list[int]] | None = None,
    round_no: int = 0,
) -> Result:
    """Load `base` with `spec` (after a warm-up, unless `warmup` is False) for `seconds`
    (default BENCH_SECONDS); `meters`: the process trees whose CPU to read, by role."""

    def run(s: Spec, seconds: float) -> dict:
        if settings.engine == "wrk":
            return run_wrk(base, s, seconds, settings, salt, workdir)
        return run_python(base, s, seconds, settings, salt)

    if warmup and settings.warmup > 0:
        run(spec, settings.warmup)
    remeasured = 0
    while True:
        cpu = {role: CpuMeter(pids) for role, pids in (meters or {}).items() if pids}
        for meter in cpu.values():
            meter.start()
        raw = run(spec, seconds or settings.seconds)
        used = {role: meter.stop() for role, meter in cpu.items()}
        share = cpu["service"].busiest_share() if "service" in cpu else None
        # A read row runs again (a booking row cannot: its phones are taken) while one worker
        # served the run alone: that measures the kernel's hand-out of connections to
        # gunicorn's workers, not the code.
        if spec.slots or share is None or share <= ONE_WORKER_SHARE:
            break
        if remeasured == MAX_REMEASURED:
            break
        remeasured += 1
    rps = raw["requests"] / raw["seconds"] if raw["seconds"] else 0.0
    return Result(
        row=spec.row,
        target=target,
        rps=rps,
        round=round_no,
        cpu=used,
        remeasured=remeasured,
        busiest_share=share,
        **raw,
    )
