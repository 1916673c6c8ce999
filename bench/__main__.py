"""`python -m bench`: start a stack, load each endpoint through the gateway and directly,
compare with a trivial Flask app, check that no slot is overbooked, and record the results."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import requests

from bench import streams as live_bench
from devstack.run import raise_open_files_limit
from devstack.servers import ServiceProcess
from devstack.stack import Stack
from schedule_service.seed import GOMOTI

HOSPITAL = "gomoti"
# The per-doctor rows: a copy of gomoti whose one doctor works gomoti's own slots, so that a
# doctor's row does the work of the hospital-level row plus the doctor's lookup.
DOCTOR_HOSPITAL = "bench-doctors"
DOCTOR = "doc"
DOCTOR_SUFFIX = " (doctor)"
DOCTOR_WITHIN = 0.90  # a per-doctor read row's req/s >= 0.90 x the hospital-level row's
BOOKING_ROW = "appointments POST"
ROW_WIDTH = 30  # "availability/bulk(60) (doctor)"
ADMIN_EMAIL = "portal@drhelal.com"
ADMIN_PASSWORD = "123456"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent

# (name, row, target, minimum ratio to trivial req/s) and one relative target.
RATIO_TARGETS = (
    ("available via gateway >= 0.40 x trivial", "available", "gateway", 0.40),
    ("calendar?days=60 via gateway >= 0.25 x trivial", "calendar?days=60", "gateway", 0.25),
    ("bulk(60) via gateway >= 0.30 x trivial", "availability/bulk(60)", "gateway", 0.30),
    ("bookings via gateway >= 0.15 x trivial", "appointments POST", "gateway", 0.15),
)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass
class Settings:
    seconds: float = field(default_factory=lambda: env_float("BENCH_SECONDS", 8.0))
    # Shorter: gomoti's 60-day window holds only ~2,700 places, which a longer row at the
    # target rate would use up, and then it would measure 409 slot_full answers instead.
    booking_seconds: float = field(
        default_factory=lambda: env_float(
            "BENCH_BOOKING_SECONDS", min(4.0, env_float("BENCH_SECONDS", 8.0))
        )
    )

    warmup: float = field(default_factory=lambda: env_float("BENCH_WARMUP", 1.0))
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


@dataclass
class Spec:
    """One kind of request. `slots` set: each request books a new phone into the next slot."""

    row: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    slots: list[tuple[str, str]] | None = None
    tag: int = 0  # one digit that keeps the phones of different booking runs apart
    hospital: str = HOSPITAL  # bookings: the hospital and doctor they go to
    practitioner: str | None = None


@dataclass
class Result:
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

    def as_dict(self) -> dict:
        return dict(self.__dict__)


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
    phone = f"+8801{salt:02d}{tag}{idx:07d}"
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
      '"patient":{"name":"Bench Patient %%d","phone":"+8801%%02d%%d%%07d"},"reason":"bench"}',
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
) -> Result:
    def run(s: Spec, seconds: float) -> dict:
        if settings.engine == "wrk":
            return run_wrk(base, s, seconds, settings, salt, workdir)
        return run_python(base, s, seconds, settings, salt)

    if warmup and settings.warmup > 0:
        run(spec, settings.warmup)
    raw = run(spec, seconds or settings.seconds)
    rps = raw["requests"] / raw["seconds"] if raw["seconds"] else 0.0
    return Result(row=spec.row, target=target, rps=rps, **raw)


# ------------------------------------------------------------------ the run


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


def admin_token(base: str) -> str:
    r = requests.post(
        base + "/api/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["access_token"]


def create_doctor_hospital(base: str, token: str) -> str:
    """Create `bench-doctors` (admin): gomoti's document with one doctor, "doc", who works
    the hospital's weekly schedule. Already there (409 hospital_exists) is fine."""
    hospital = copy.deepcopy(GOMOTI)
    hospital.update(
        hospital_id=DOCTOR_HOSPITAL,
        hospital_name="Bench Doctors",
        practitioners={DOCTOR: {"name": "Dr. Bench"}},
    )
    r = requests.post(
        f"{base}/api/dynamic-slots/hospitals",
        json=hospital,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if r.status_code == 409 and r.json().get("error") == "hospital_exists":
        return "already there"
    if r.status_code != 201:
        raise RuntimeError(f"creating {DOCTOR_HOSPITAL} failed: {r.status_code} {r.text}")
    return "created"


def plan(stack: Stack, hospital_id: str = HOSPITAL, practitioner: str | None = None) -> dict:
    """Dates and slots for the rows of a hospital (or of its doctor `practitioner`), from the
    hospital's own configuration and the (doctor's) calendar."""
    hospital = requests.get(
        f"{stack.schedule_url}/api/dynamic-slots/hospitals/{hospital_id}", timeout=10
    ).json()
    today = datetime.now(ZoneInfo(hospital["timezone"])).date()
    window = int(hospital["advance_booking_days"])
    saturday = today + timedelta(days=(5 - today.weekday()) % 7 or 7)
    calendar = requests.get(
        f"{stack.schedule_url}/api/dynamic-slots/calendar/{hospital_id}",
        params={"days": window + 1, "start": today.isoformat(), **doctor_query(practitioner)},
        timeout=30,
    )
    calendar.raise_for_status()
    calendar = calendar.json()
    # Not today: a slot could pass mid-run and turn bookings into 422 slot_in_past.
    slots = [
        (day["date"], s["start"])
        for day in calendar["days"]
        if day["status"] == "open" and day["date"] != today.isoformat()
        for s in day["slots"]
        if s["bookable"] and s["available"] > 0
    ]
    capacity = {
        (day["date"], s["start"]): s["capacity"] for day in calendar["days"] for s in day["slots"]
    }
    return {
        "hospital": hospital_id,
        "practitioner": practitioner,
        "suffix": DOCTOR_SUFFIX if practitioner else "",
        "today": today,
        "saturday": saturday,
        "slots": slots,
        "capacity": capacity,
        "bulk_dates": [(today + timedelta(days=i)).isoformat() for i in range(60)],
    }


def read_specs(p: dict) -> list[tuple[Spec, str]]:
    """(spec, gateway-or-direct service) for the read rows of the plan's hospital (or of its
    doctor: the same requests with `practitioner_id`, rows named "... (doctor)")."""
    hospital, doctor, suffix = p["hospital"], doctor_query(p["practitioner"]), p["suffix"]
    query = "?" + urlencode(doctor) if doctor else ""
    available = f"/api/dynamic-slots/available/{hospital}/{p['saturday']}{query}"
    cal_query = urlencode({"start": p["today"].isoformat(), **doctor})
    cal = f"/api/dynamic-slots/calendar/{hospital}?{cal_query}&days="
    bulk = json.dumps(
        {"hospital_id": hospital, **doctor, "dates": p["bulk_dates"]}, separators=(",", ":")
    )
    json_headers = {"Content-Type": "application/json"}
    return [
        (Spec("available" + suffix, "GET", available), "schedule"),
        (Spec("calendar?days=1" + suffix, "GET", cal + "1"), "schedule"),
        (Spec("calendar?days=7" + suffix, "GET", cal + "7"), "schedule"),
        (Spec("calendar?days=60" + suffix, "GET", cal + "60"), "schedule"),
        (
            Spec(
                "availability/bulk(60)" + suffix,
                "POST",
                "/api/availability/bulk",
                json_headers,
                bulk,
            ),
            "booking",
        ),
    ]


def check_capacity(stack: Stack, token: str, p: dict) -> dict:
    """Per slot of every booked date of the plan's hospital (or of its doctor, whose places
    are counted apart): confirmed appointments vs capacity and availability."""
    auth = {"Authorization": f"Bearer {token}"}
    hospital, doctor = p["hospital"], doctor_query(p["practitioner"])
    dates = sorted({d for d, _ in p["slots"]})
    overbooked, mismatched, dup_serials = [], [], []
    confirmed_total = 0
    confirmed_ids: list[str] = []
    statuses: Counter[str] = Counter()
    for day in dates:
        per_slot: Counter[str] = Counter()
        serials: dict[str, Counter[int]] = {}
        page = 1
        while True:
            r = requests.get(
                f"{stack.booking_url}/api/appointments",
                params={
                    "hospital_id": hospital,
                    **doctor,
                    "date": day,
                    "per_page": 500,
                    "page": page,
                },
                headers=auth,
                timeout=30,
            )
            r.raise_for_status()
            body = r.json()
            for a in body["appointments"]:
                statuses[a["status"]] += 1
                if a["status"] == "confirmed":
                    confirmed_ids.append(a["appointment_id"])
                    start = a["slot"]["start"]
                    per_slot[start] += 1
                    serials.setdefault(start, Counter())[a.get("serial")] += 1
            if page * body["per_page"] >= body["total"] or not body["appointments"]:
                break
            page += 1
        avail = requests.get(
            f"{stack.booking_url}/api/availability/{hospital}/{day}", params=doctor, timeout=10
        ).json()
        for start in sorted(set(per_slot) | set(avail.get("slots", {}))):
            count = per_slot[start]
            confirmed_total += count
            counts = avail.get("slots", {}).get(start, {})
            capacity = counts.get("capacity", p["capacity"].get((day, start), 15))
            if count > capacity or count > 15:
                overbooked.append(
                    {"date": day, "slot": start, "confirmed": count, "capacity": capacity}
                )
            if counts.get("booked") != count:
                mismatched.append(
                    {
                        "date": day,
                        "slot": start,
                        "confirmed": count,
                        "availability_booked": counts.get("booked"),
                    }
                )
            dups = [s for s, n in serials.get(start, Counter()).items() if n > 1]
            if dups:
                dup_serials.append({"date": day, "slot": start, "serials": dups})
    return {
        "dates_checked": len(dates),
        "confirmed_total": confirmed_total,
        "statuses": dict(statuses),
        "overbooked": overbooked,
        "availability_mismatches": mismatched,
        "duplicate_serials": dup_serials,
        "ok": not overbooked and not dup_serials,
        "confirmed_ids": confirmed_ids,
    }


def verdict(check: dict) -> str:
    if check["ok"]:
        return f"OK ({check['confirmed_total']} confirmed, none over capacity)"
    over, dups = len(check["overbooked"]), len(check["duplicate_serials"])
    return f"FAILED ({over} slots overbooked, {dups} slots with a shared serial)"


def cancel_all(base: str, token: str, ids: list[str]) -> int:
    """Cancel appointments (admin), eight at a time."""
    local = threading.local()

    def cancel(oid: str) -> bool:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Authorization"] = f"Bearer {token}"
        return local.session.delete(f"{base}/api/appointments/{oid}", timeout=30).ok

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(cancel, ids))


def booking_pattern(slots: list[tuple[str, str]], turn: int) -> list[tuple[str, str]]:
    """The slots that successive bookings go to, round robin: spread over every slot, with a
    burst of 16 bookings into one of three "hot" slots (different per row: `turn` 1 or 2 of
    the plan's booking rows) after every 96, so that some slots fill up under concurrent
    bookings and refuse the rest (409)."""
    if len(slots) < 12:
        return list(slots)
    hot = slots[3 * (turn - 1) : 3 * turn]
    spread = slots[6:]
    out: list[tuple[str, str]] = []
    bursts = 0
    for i, slot in enumerate(spread, start=1):
        out.append(slot)
        if i % 96 == 0:
            out += [hot[bursts % len(hot)]] * 16
            bursts += 1
    return out


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


def ceiling(results: list[Result]) -> float:
    """The trivial app's req/s: the mean of its first and last rows (the ratios' base)."""
    rates = [r.rps for r in results if r.row.startswith("trivial /ping")]
    return sum(rates) / len(rates) if rates else 0.0


def busy_others() -> float:
    """The 1-minute load average: more than ~1 before the run means someone else is busy."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def key(r: Result) -> str:
    return f"{r.row} [{r.target}]"


def fmt_statuses(r: Result) -> str:
    parts = [f"{c}:{n}" for c, n in sorted(r.statuses.items()) if not c.startswith("2")]
    if r.socket_errors:
        parts.append(f"socket:{r.socket_errors}")
    return " ".join(parts) or "-"


def doctor_ratios(results: list[Result]) -> list[dict]:
    """Each per-doctor row's req/s over that of its hospital-level row (same target)."""
    rps = {(r.row, r.target): r.rps for r in results}
    out = []
    for r in results:
        if not r.row.endswith(DOCTOR_SUFFIX):
            continue
        base = r.row.removesuffix(DOCTOR_SUFFIX)
        hospital_rps = rps.get((base, r.target), 0.0)
        out.append(
            {
                "row": r.row,
                "target": r.target,
                "rps": round(r.rps, 1),
                "hospital_rps": round(hospital_rps, 1),
                "ratio": round(r.rps / hospital_rps, 3) if hospital_rps else 0.0,
                "read": not r.row.startswith(BOOKING_ROW),
            }
        )
    return out


def report(results: list[Result], prev: dict | None) -> tuple[list[str], list[dict]]:
    trivial = ceiling(results)
    prev_rows = (prev or {}).get("rows", {})
    lines = []
    head = (
        f"{'row':<{ROW_WIDTH}} {'target':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'x trivial':>9} {'prev x':>7} {'2xx':>7} non-2xx"
    )
    lines += [head, "-" * len(head)]
    for r in results:
        ratio = r.rps / trivial if trivial else 0.0
        prev_ratio = prev_rows.get(key(r), {}).get("ratio")
        ok = sum(n for c, n in r.statuses.items() if c.startswith("2"))
        ok_text = str(ok) if r.statuses else str(r.requests - r.non_2xx)
        prev_text = "-" if prev_ratio is None else f"{prev_ratio:.3f}"
        lines.append(
            f"{r.row:<{ROW_WIDTH}} {r.target:<8} {r.rps:>8.1f} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {ratio:>9.3f} {prev_text:>7} {ok_text:>7} {fmt_statuses(r)}"
        )
    by = {(r.row, r.target): r.rps / trivial if trivial else 0.0 for r in results}
    targets = []
    for name, row, target, minimum in RATIO_TARGETS:
        value = by.get((row, target), 0.0)
        targets.append({"target": name, "value": round(value, 3), "met": value >= minimum})
    cal1 = by.get(("calendar?days=1", "gateway"), 0.0)
    cal60 = by.get(("calendar?days=60", "gateway"), 0.0)
    rel = cal60 / cal1 if cal1 else 0.0
    targets.append(
        {
            "target": "calendar?days=60 >= 0.5 x calendar?days=1 (gateway)",
            "value": round(rel, 3),
            "met": rel >= 0.5,
        }
    )
    for d in doctor_ratios(results):
        if d["read"]:
            targets.append(
                {
                    "target": f"{d['row']} within 10% of hospital-level ({d['target']})",
                    "value": d["ratio"],
                    "met": d["ratio"] >= DOCTOR_WITHIN,
                }
            )
    return lines, targets


def run(settings: Settings, workdir: Path) -> int:
    salt = int(time.time()) % 100
    extra_env = {"ACCESS_LOG_LEVEL": "WARNING", "BOOKING_LIMIT": "1000000"}
    raise_open_files_limit()  # inherited by the stack's processes: thousands of streams
    started = datetime.now(UTC)
    load_before = busy_others()
    print(
        f"bench: engine={settings.engine} seconds={settings.seconds:g} "
        f"booking_seconds={settings.booking_seconds:g} warmup={settings.warmup:g} "
        f"connections={settings.connections} "
        f"load_threads={settings.load_threads} gunicorn={settings.workers}x{settings.threads}",
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
    results: list[Result] = []
    live: dict | None = None
    checks: list[dict] = []
    with stack:
        trivial.start()
        try:
            print(f"bench: stack up (gateway {stack.gateway_url})", flush=True)
            token = admin_token(stack.gateway_url)
            made = create_doctor_hospital(stack.gateway_url, token)
            print(f"bench: hospital {DOCTOR_HOSPITAL} with doctor {DOCTOR!r}: {made}", flush=True)
            p = plan(stack)
            p_doctor = plan(stack, DOCTOR_HOSPITAL, DOCTOR)
            direct = {"schedule": stack.schedule_url, "booking": stack.booking_url}

            def row(
                base: str, target: str, spec: Spec, warmup: bool = True, seconds: float = 0
            ) -> None:
                r = measure(base, target, spec, settings, salt, workdir, warmup, seconds)
                results.append(r)
                print(
                    f"  {r.row:<{ROW_WIDTH}} {r.target:<8} {r.rps:>8.1f} req/s  "
                    f"p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms  non-2xx {fmt_statuses(r)}",
                    flush=True,
                )

            row(trivial.url, "direct", Spec("trivial /ping", "GET", "/ping"))
            for spec, service in read_specs(p) + read_specs(p_doctor):
                row(stack.gateway_url, "gateway", spec)
                row(direct[service], "direct", spec)
            book_headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
            }
            row(trivial.url, "direct", Spec("trivial /ping (again)", "GET", "/ping"))

            def bookings(p: dict, first_tag: int) -> None:
                """The plan's booking rows, via the gateway then directly (phone tags
                `first_tag` and the next), each followed by a capacity check."""
                name = BOOKING_ROW + p["suffix"]
                print(
                    f"bench: {name}: booking into {len(p['slots'])} slots on "
                    f"{len({d for d, _ in p['slots']})} dates",
                    flush=True,
                )
                for turn, (base, target) in enumerate(
                    ((stack.gateway_url, "gateway"), (stack.booking_url, "direct")), start=1
                ):
                    if not p["slots"]:
                        print(f"bench: no bookable slot left; {name} rows skipped")
                        break
                    spec = Spec(
                        name,
                        "POST",
                        "/api/appointments",
                        book_headers,
                        slots=booking_pattern(p["slots"], turn),
                        tag=first_tag + turn - 1,
                        hospital=p["hospital"],
                        practitioner=p["practitioner"],
                    )
                    # No warm-up: every booking counts toward the capacity check below.
                    row(base, target, spec, warmup=False, seconds=settings.booking_seconds)
                    time.sleep(0.5)  # in-flight bookings cut off by the load tool finish
                    check = check_capacity(stack, token, p)
                    check["after"] = f"bookings{p['suffix']} via {target}"
                    checks.append(check)
                    print(f"  capacity check after {check['after']}: {verdict(check)}")
                    if turn == 1:
                        # Free the places again so the direct row also books mostly into room.
                        t0 = time.monotonic()
                        n = cancel_all(stack.booking_url, token, check.pop("confirmed_ids"))
                        print(f"  cancelled {n} appointments in {time.monotonic() - t0:.1f}s")
                    check.pop("confirmed_ids", None)

            bookings(p, 1)
            bookings(p_doctor, 3)  # other phones than gomoti's rows (tags 1 and 2)
            if settings.streams > 0:
                live = live_streams(stack, token, p_doctor, settings)
            dead = stack.dead_processes()
        finally:
            trivial.stop()

    prev = previous_run(settings.engine)
    lines, targets = report(results, prev)
    print()
    print("\n".join(lines))
    rates = [r.rps for r in results if r.row.startswith("trivial /ping")]
    spread = (max(rates) - min(rates)) / max(rates) if rates and max(rates) else 0.0
    print(f"ratios are to the mean of the two trivial rows ({ceiling(results):.1f} req/s)")
    if spread > 0.15 or load_before > 1.0:
        print(
            f"warning: noisy machine (trivial rows differ by {spread:.0%}, load average "
            f"{load_before:.2f} before the start): other processes share the CPU, so treat "
            "the ratios with care"
        )
    if prev:
        print(f"(prev x = ratio in the previous run, {prev.get('timestamp')} {prev.get('commit')})")
    print()
    for t in targets:
        print(f"  {'MET   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']:.3f}")
    print()
    doctors = doctor_ratios(results)
    if doctors:
        print("per-doctor rows / hospital-level rows (same target):")
    for d in doctors:
        print(
            f"  {d['row']:<{ROW_WIDTH}} {d['target']:<8} {d['rps']:>8.1f} / "
            f"{d['hospital_rps']:>8.1f} req/s = {d['ratio']:.3f}"
        )
    if doctors:
        print()
    for r in results:
        if r.row.startswith(BOOKING_ROW):
            created, full = r.statuses.get("201", 0), r.statuses.get("409", 0)
            print(f"{r.row} via {r.target}: {created} x 201, {full} x 409 seen by the load tool")
            if full > 0.25 * max(1, r.requests):
                print(
                    "  warning: over a quarter refused as full: the slots ran out, so this "
                    "row measures refusals; lower BENCH_BOOKING_SECONDS"
                )
    for check in checks:
        print(
            f"after {check['after']}: {check['confirmed_total']} confirmed on "
            f"{check['dates_checked']} dates, statuses {check['statuses']}"
        )
        if check["overbooked"]:
            print(f"  OVERBOOKED: {len(check['overbooked'])} slots: {check['overbooked'][:10]}")
        if check["duplicate_serials"]:
            print(f"  DUPLICATE SERIALS: {check['duplicate_serials'][:10]}")
        if check["availability_mismatches"]:
            print(
                f"  warning: {len(check['availability_mismatches'])} slots where availability "
                f"counts differ from confirmed appointments: "
                f"{check['availability_mismatches'][:5]}"
            )
    capacity_ok = all(c["ok"] for c in checks)
    print(
        "capacity check: "
        + (
            "OK, no slot holds more confirmed appointments than its capacity"
            if capacity_ok
            else "FAILED"
        )
    )
    if live:
        print("live streams (bench/streams.py):")
        print("\n".join(live_bench.summary(live)))
        stream_targets = live_bench.targets(live)
        targets += stream_targets
        for t in stream_targets:
            print(f"  {'MET   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']}")
    if dead:
        print(f"warning: processes died during the run: {dead}")

    trivial_rps = ceiling(results)
    commit = git_commit()
    summary = {
        "timestamp": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "engine": settings.engine,
        "seconds": settings.seconds,
        "connections": settings.connections,
        "rows": {
            key(r): {"rps": round(r.rps, 1), "ratio": round(r.rps / trivial_rps, 3)}
            for r in results
        },
        "targets": {t["target"]: t["met"] for t in targets},
        "capacity_ok": capacity_ok,
        "load_before": load_before,
        "live_streams": live,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    latest = {
        **summary,
        "settings": settings.__dict__,
        "results": [r.as_dict() for r in results],
        "targets": targets,
        "doctor_ratios": doctors,
        "capacity_checks": checks,
        "dead_processes": dead,
    }
    (RESULTS_DIR / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    with open(RESULTS_DIR / "history.jsonl", "a") as fh:
        fh.write(json.dumps(summary, separators=(",", ":")) + "\n")
    print(f"results: {RESULTS_DIR / 'latest.json'}")
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
