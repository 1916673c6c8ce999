"""`python -m bench.gateway_cost`: the gateway's own CPU per forwarded request, by variant.

Every variant of gateway/Caddyfile runs as a caddy process of its own (devstack's CaddyProcess, on
free loopback ports, with the variables devstack gives it) in front of one fixed upstream, and is
loaded in turn with wrk. The CPU the caddy process used meanwhile (bench/cpu.py, from /proc)
divided by the requests wrk counted is its cost per request; wrk's and the upstream's CPU are not
counted. The variants:

- "minimal": the same binary with a bare `reverse_proxy` to the same upstream (the floor);
- "full": the Caddyfile as it is; "full, access log INFO": with its production log level (the
  bench and the tests run it at WARN: ACCESS_LOG_LEVEL=WARNING); "..., GOGC=400": with Go's
  collector set to run a quarter as often (an environment variable of the process, not the
  Caddyfile's);
- "- X": the Caddyfile without one candidate X (rendered by text edits into a temporary copy; a
  variant whose text is not in the file is "n/a"), and "- all candidates" (every "-" variant at
  once, but for the reverse proxy's own log, which the minimal Caddy has too);
- "--compare FILE": another Caddyfile (e.g. a saved copy of the old one) as it is.

The upstream is a second caddy answering every request with a fixed 1.5 KB JSON document
(`respond`, with its Content-Length, HTTP/1.1 keep-alive like gunicorn): it costs a few tens of
microseconds per request, so on a 2-CPU machine it leaves the CPU to the gateway and wrk, and every
variant gets the very same answers. `--upstream gunicorn` puts the same document behind gunicorn
(gthread, the services' settings) instead; it takes most of a CPU itself, so its samples are
noisier.

As fast as it goes (the default), a request costs a Go process less than at the rate of the real
services (more requests share each wake-up and each collection), and the variants run at
different rates. `--rate N` paces wrk (each connection waits connections/N s before each request)
so that every variant runs at about N requests/s: the gateway's CPU per request at a given load.

Rounds are interleaved (each visits the variants in another order) and the table shows each
variant's median over the rounds (and their range), so a burst of other work on the machine moves
one sample, not a variant. Two processes of the very same Caddyfile (`--compare
gateway/Caddyfile`) differed by about 5 µs per request on this 2-CPU machine: a difference
smaller than that is not a finding. Requests: GET of a schedule read (no body) and POST of a bulk
availability query (an ~0.9 KB JSON body, the shape of POST /api/availability/bulk and of a
booking).

    .venv/bin/python -m bench.gateway_cost [--rounds 3] [--duration 2] [--rate 2000]
        [--only full,compare] [--compare /tmp/Caddyfile.old] [--caddyfile gateway/Caddyfile]
        [--connections 16] [--requests GET,POST] [--upstream caddy|gunicorn]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path

from bench.cpu import CpuMeter
from devstack.gateway import CaddyProcess
from devstack.servers import ServiceProcess, hold_signal
from gateway import CADDYFILE, caddy_binary

WRK = "/usr/bin/wrk"
DAY = "2026-03-02"
# The bulk query of bench/__main__.py: a hospital, a doctor and 60 dates.
BULK_BODY = json.dumps(
    {
        "hospital_id": "gomoti",
        "practitioner_id": "doc",
        "dates": [f"2026-{3 + i // 28:02d}-{1 + i % 28:02d}" for i in range(60)],
    },
    separators=(",", ":"),
)
REQUESTS = {
    "GET": ("GET", f"/api/dynamic-slots/available/gomoti/{DAY}", None),
    "POST": ("POST", "/api/availability/bulk", BULK_BODY),
}

# An edit of the Caddyfile's text: the new text, or None when what it removes is not there.
Edit = Callable[[str], "str | None"]


def _answer() -> str:
    """A schedule read's answer: ~1.5 KB of JSON."""
    slots: list[dict] = []
    doc: dict = {"hospital_id": "gomoti", "date": DAY, "timezone": "Asia/Dhaka", "slots": slots}
    while len(json.dumps(doc, separators=(",", ":"))) < 1500:
        i = len(slots)
        slots.append(
            {"start": f"{9 + i // 4:02d}:{i % 4 * 15:02d}", "available": 4 - i % 3, "capacity": 4}
        )
    return json.dumps(doc, separators=(",", ":"))


# The internal address every bench config has: CaddyProcess.ready() asks its /healthz.
_INTERNAL = """
http://:{$GATEWAY_METRICS_PORT} {
\tbind 127.0.0.1
\trespond /healthz 200
}
"""

UPSTREAM_CONFIG = (
    "{\n\tadmin off\n\tlog {\n\t\tlevel ERROR\n\t}\n}\n"
    "{$GATEWAY_ADDRESS} {\n\t{$GATEWAY_BIND}\n\theader Content-Type application/json\n"
    f"\trespond `{_answer()}` 200\n}}\n" + _INTERNAL
)


def wsgi_app():
    """`--upstream gunicorn`: the same answer from a WSGI app (gunicorn's factory call)."""
    body = _answer().encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]

    def app(request: dict, start_response):
        length = int(request.get("CONTENT_LENGTH") or 0)  # (the WSGI request's, not os.environ)
        if length:
            request["wsgi.input"].read(length)
        start_response("200 OK", headers)
        return [body]

    return app


def minimal_config(upstream: str) -> str:
    """The floor: the same binary, a bare reverse_proxy to the same upstream."""
    return (
        "{\n\tadmin {$GATEWAY_ADMIN_ADDRESS}\n}\n"
        f"{{$GATEWAY_ADDRESS}} {{\n\t{{$GATEWAY_BIND}}\n\treverse_proxy {upstream}\n}}\n"
        + _INTERNAL
    )


# ---------------------------------------------------------------- edits of the Caddyfile


def _braces(line: str) -> int:
    """How many blocks a line opens (negative: closes); comment lines none."""
    if line.lstrip().startswith("#"):
        return 0
    return line.count("{") - line.count("}")


def drop(pattern: str, containing: str | None = None) -> Edit:
    """Remove every line matching `pattern` (from its start) with the block it opens, if any;
    with `containing`, only such a line+block whose text holds it."""
    regex = re.compile(pattern)

    def edit(text: str) -> str | None:
        lines = text.splitlines(keepends=True)
        out: list[str] = []
        removed = False
        i = 0
        while i < len(lines):
            if not regex.match(lines[i]):
                out.append(lines[i])
                i += 1
                continue
            end, depth = i, _braces(lines[i])
            while depth > 0 and end + 1 < len(lines):
                end += 1
                depth += _braces(lines[end])
            chunk = lines[i : end + 1]
            if containing is not None and containing not in "".join(chunk):
                out.append(lines[i])
                i += 1
                continue
            removed = True
            i = end + 1
        return "".join(out) if removed else None

    return edit


def sub(pattern: str, replacement: str) -> Edit:
    """Replace every match of `pattern` (multi-line mode)."""
    regex = re.compile(pattern, re.M)

    def edit(text: str) -> str | None:
        new, count = regex.subn(lambda _: replacement, text)
        return new if count else None

    return edit


def drop_named(name: str) -> Edit:
    """Remove the named matcher @name and the handle/header blocks that use it."""
    first, second = drop(rf"\s*@{name}\b"), drop(rf"\s*(handle|header|error) @{name}\b")

    def edit(text: str) -> str | None:
        step = first(text)
        return None if step is None else second(step)

    return edit


BODY_CEL = (
    r'expression `!\(\{http\.request\.header\.Content-Length\} in \["", "0"\]\) '
    r'\|\| \{http\.request\.header\.Transfer-Encoding\} != ""`'
)
# Excluding a module from every log leaves its logger without a core: the reverse proxy's
# per-request logger.With() (which encodes the request at once, at any level) then costs nothing.
GLOBAL_LOG = "\tlog {\n\t\toutput stderr\n\t\tformat json\n"
NO_PROXY_LOG = GLOBAL_LOG + "\t\texclude http.handlers.reverse_proxy\n"
CANDIDATES: dict[str, list[Edit]] = {
    "- metrics (global option)": [drop(r"\tmetrics\b")],
    "- access log": [drop(r"\tlog \{", containing="GATEWAY_ACCESS_LOG_LEVEL")],
    "- CORS": [drop(r"\s*import cors\b"), drop(r"\s*handle @cors_preflight")],
    "- URI length check (414)": [drop_named("uri_too_long"), drop(r"\s*import uri_limit\b")],
    "- declared length check (413)": [drop_named("too_large")],
    "- body CEL -> header matcher": [sub(BODY_CEL, "header Content-Length *")],
    "- 405 check (API methods)": [drop_named("api_method_not_allowed")],
    "- Connection: close on bodies": [
        drop_named("with_body_request"),
        drop(r"\s*header \{", containing="Connection close"),
    ],
    "- X-Request-ID regex": [drop(r"\s*~\^\(\[A-Za-z0-9")],
    "- X-Request-ID": [drop(r"\s*import request_id\b"), sub(r"\{rid\}", "{http.request.uuid}")],
    "- flush_interval -1": [drop(r"\s*flush_interval -1\b")],
    "- request_buffers": [drop(r"\s*request_buffers\b")],
    "- header_up/header_down": [drop(r"\s*header_(up|down)\b")],
    "- header block (deferred)": [drop(r"\s*header \{", containing="defer")],
    "- request_body": [drop(r"\s*request_body \{")],
    "- active health checks": [drop(r"\s*health_(uri|interval|timeout|status)\b")],
    "- 1 KiB read/write buffers": [drop(r"\s*(read|write)_buffer 1KiB")],
    "+ 1 KiB buffers on every route": [sub(r" 4KiB ", " 1KiB ")],
    "- the reverse proxy's own log": [sub(re.escape(GLOBAL_LOG), NO_PROXY_LOG)],
}
# Not in "- all candidates" (they add something, or take away what the minimal Caddy has too).
EXTRA = ("+ 1 KiB buffers on every route", "- the reverse proxy's own log")


def render(text: str, edits: list[Edit]) -> str | None:
    """`text` after those of `edits` that apply; None when none does."""
    applied = False
    for edit in edits:
        new = edit(text)
        if new is not None:
            text, applied = new, True
    return text if applied else None


# ---------------------------------------------------------------- processes and load


class BenchCaddy(CaddyProcess):
    """CaddyProcess on a config file of our own (its ports, socket, readiness and stop)."""

    stop_timeout = 5.0

    def __init__(self, name: str, config: Path, work: Path, env: dict[str, str]) -> None:
        self.config = config
        super().__init__(name, work / name, work / "site", env=env)

    def command(self) -> list[str]:
        return [caddy_binary(), "run", "--config", str(self.config), "--adapter", "caddyfile"]


@dataclass
class Variant:
    name: str
    config: str | None  # the Caddyfile's text; None: n/a
    env: dict[str, str] = field(default_factory=dict)
    process: BenchCaddy | None = None
    us: dict[str, list[float]] = field(default_factory=dict)  # request kind -> µs per request


@dataclass
class Sample:
    cpu: float  # seconds of the gateway's CPU
    requests: int
    seconds: float
    bad: int  # non-2xx answers and socket errors
    busy: float  # seconds of CPU the whole machine used meanwhile


def machine_busy() -> float:
    """Seconds of CPU the machine has used (all CPUs, everything but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wrk_script(work: Path, kind: str, pause_ms: float = 0.0) -> Path:
    """wrk's Lua script for `kind`; with `pause_ms`, each connection waits that long before
    each request (an open loop of about connections / pause requests per second)."""
    method, _, body = REQUESTS[kind]
    lines = [f'wrk.method = "{method}"', 'wrk.headers["Accept"] = "application/json"']
    if body is not None:
        lines += [f"wrk.body = [[{body}]]", 'wrk.headers["Content-Type"] = "application/json"']
    if pause_ms > 0:
        lines += [f"function delay() return {pause_ms:g} end"]
    path = work / f"{kind}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_wrk(out: str) -> tuple[int, float, int]:
    """(requests, seconds, bad answers + socket errors) from wrk's report."""
    found = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not found:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[found.group(3)]
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    for errors in re.findall(r"Socket errors: (.*)", out):
        bad += sum(int(n) for n in re.findall(r"\d+", errors))
    return int(found.group(1)), float(found.group(2)) * unit, bad


def load(gateway: BenchCaddy, kind: str, script: Path, seconds: int, conns: int) -> Sample:
    """Load `gateway` with wrk for `seconds`; the CPU it used meanwhile."""
    url = gateway.url + REQUESTS[kind][1]
    command = [
        WRK,
        "-t1",
        f"-c{conns}",
        f"-d{max(1, seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    assert gateway.pid is not None
    meter = CpuMeter([gateway.pid])
    busy = machine_busy()
    meter.start()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    cpu = meter.stop()
    busy = machine_busy() - busy
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    requests, took, bad = parse_wrk(done.stdout)
    return Sample(cpu, requests, took, bad, busy)


def check(gateway: BenchCaddy, name: str) -> None:
    """One request of each kind through `gateway`: it must be the upstream's 200."""
    for kind, (method, path, body) in REQUESTS.items():
        conn = HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        try:
            headers = {"Content-Type": "application/json"} if body else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
        finally:
            conn.close()
        if resp.status != 200 or b'"slots"' not in text:
            raise RuntimeError(f"{name}: {kind} {path} answered {resp.status}: {text[:300]!r}")


# ---------------------------------------------------------------- the run


def gateway_env(upstream: str, access_level: str) -> dict[str, str]:
    """The Caddyfile's variables as devstack gives them (devstack/stack.py gateway_environment),
    every service on the one upstream."""
    line = f"to {upstream}"
    return {
        "SCHEDULE_UPSTREAMS": line,
        "BOOKING_UPSTREAMS": line,
        "LIVE_UPSTREAMS": line,
        "GATEWAY_ACCESS_LOG_LEVEL": access_level,
        # Stops quickly at the end (no effect on a request's cost).
        "GATEWAY_GRACE_PERIOD": "1",
    }


def variants(args: argparse.Namespace, upstream: str) -> list[Variant]:
    base = Path(args.caddyfile).read_text()
    env = gateway_env(upstream, args.access_log_level)
    minimal = minimal_config(upstream)
    out = [
        Variant("minimal (bare reverse_proxy)", minimal),
        Variant("full", base, env),
        Variant("full, access log INFO", base, {**env, "GATEWAY_ACCESS_LOG_LEVEL": "INFO"}),
        # Go's GC target (the environment, not the Caddyfile): fewer collections.
        Variant("minimal, GOGC=400", minimal, {"GOGC": "400"}),
        Variant("full, GOGC=400", base, {**env, "GOGC": "400"}),
    ]
    for path in args.compare:
        out.append(Variant(f"compare: {path}", Path(path).read_text(), env))
    for name, edits in CANDIDATES.items():
        out.append(Variant(name, render(base, edits), env))
    every = [edit for name, edits in CANDIDATES.items() if name not in EXTRA for edit in edits]
    out.append(Variant("- all candidates", render(base, every), env))
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        out = [out[0]] + [v for v in out[1:] if any(w in v.name for w in wanted)]
    return out


def start_all(work: Path, group: list[Variant], started: list) -> None:
    for index, variant in enumerate(group):
        if variant.config is None:
            continue
        config = work / f"variant-{index}.Caddyfile"
        config.write_text(variant.config)
        process = BenchCaddy(f"variant-{index}", config, work, variant.env)
        started.append(process)
        try:
            process.start()
            check(process, variant.name)
        except RuntimeError as exc:  # a variant that does not load or answer: left out
            errors = [ln for ln in str(exc).splitlines() if '"error"' in ln or "Error" in ln]
            print(f"  {variant.name}: left out: {(errors or [str(exc)])[-1][:300]}", flush=True)
            process.stop()
            variant.config = None
            continue
        variant.process = process


def stop_all(started: list) -> None:
    """SIGTERM to every process first (they stop together), then wait for each."""
    for process in started:
        if process.running and process.proc is not None:
            process.proc.send_signal(signal.SIGTERM)
    for process in started:
        process.stop()


def _interrupt(signum: int, _frame) -> None:
    if hold_signal(signum):  # a child is being spawned: raised again once it is known
        return
    raise KeyboardInterrupt


def fmt_row(name: str, cells: list[str]) -> str:
    return f"{name:<34}" + "".join(f"  {c:>28}" for c in cells)


def report(group: list[Variant], kinds: list[str], floor: Variant) -> None:
    header = [f"{k} µs/req (range) x minimal" for k in kinds]
    print()
    print(fmt_row("variant", header))
    for variant in group:
        cells = []
        for kind in kinds:
            samples = variant.us.get(kind, [])
            if variant.config is None:
                cells.append("n/a")
                continue
            if not samples:
                cells.append("-")
                continue
            median = statistics.median(samples)
            base = statistics.median(floor.us[kind]) if floor.us.get(kind) else float("nan")
            span = f"({min(samples):.0f}-{max(samples):.0f})"
            cells.append(f"{median:5.0f} {span:>11} {median / base:5.2f}")
        print(fmt_row(variant.name, cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_cost", description=__doc__)
    parser.add_argument("--caddyfile", default=str(CADDYFILE), help="the gateway's Caddyfile")
    parser.add_argument(
        "--compare", action="append", default=[], help="another Caddyfile to load as it is"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=2, help="seconds of wrk per sample")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk first, per variant")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--requests", default="GET,POST", help="GET and/or POST")
    parser.add_argument("--only", default="", help="variants whose names contain these words")
    parser.add_argument("--upstream", choices=("caddy", "gunicorn"), default="caddy")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="about this many requests/s (default: as fast as it goes)",
    )
    parser.add_argument(
        "--access-log-level", default="WARN", help="GATEWAY_ACCESS_LOG_LEVEL of the variants"
    )
    args = parser.parse_args(argv)
    kinds = [k for k in args.requests.split(",") if k in REQUESTS]
    if not Path(WRK).exists():
        print(f"bench.gateway_cost: needs wrk at {WRK}", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)

    started: list[BenchCaddy | ServiceProcess] = []
    with tempfile.TemporaryDirectory(prefix="gateway-cost-") as tmp:
        work = Path(tmp)
        (work / "site").mkdir()
        try:
            if args.upstream == "gunicorn":
                upstream: BenchCaddy | ServiceProcess = ServiceProcess(
                    "upstream", "bench.gateway_cost:wsgi_app()", work, workers=2, threads=4
                )
            else:
                upstream_config = work / "upstream.Caddyfile"
                upstream_config.write_text(UPSTREAM_CONFIG)
                upstream = BenchCaddy("upstream", upstream_config, work, {})
            started.append(upstream)
            upstream.start()
            address = f"127.0.0.1:{upstream.port}"
            group = variants(args, address)
            count = sum(v.config is not None for v in group)
            per_sample = args.duration + 0.3
            total = count * len(kinds) * (args.rounds * per_sample + args.warmup)
            print(
                f"bench.gateway_cost: {args.upstream} upstream; {count} variants x {kinds} x "
                f"{args.rounds} rounds of "
                f"{args.duration:g} s (wrk -t1 -c{args.connections}); about {total / 60:.1f} min; "
                f"load average {Path('/proc/loadavg').read_text().split()[:3]}",
                flush=True,
            )
            start_all(work, group, started)
            live = [v for v in group if v.process is not None]
            pause = 1000.0 * args.connections / args.rate if args.rate else 0.0
            scripts = {kind: wrk_script(work, kind, pause) for kind in kinds}
            for variant in live:  # connection pools, buffers, the Go heap's size
                for kind in kinds:
                    assert variant.process is not None
                    load(variant.process, kind, scripts[kind], args.warmup, args.connections)
            busy_total = gateway_total = seconds_total = 0.0
            bad_total = 0
            began = time.monotonic()
            for round_no in range(args.rounds):
                order = list(live)  # a new order each round (the same for every run)
                random.Random(round_no).shuffle(order)
                for variant in order:
                    assert variant.process is not None
                    line = []
                    for kind in kinds:
                        sample = load(
                            variant.process, kind, scripts[kind], args.duration, args.connections
                        )
                        if sample.requests == 0:
                            raise RuntimeError(f"{variant.name}: no request answered")
                        us = sample.cpu / sample.requests * 1e6
                        variant.us.setdefault(kind, []).append(us)
                        busy_total += sample.busy
                        gateway_total += sample.cpu
                        seconds_total += sample.seconds
                        bad_total += sample.bad
                        rate = sample.requests / sample.seconds
                        errors = f", {sample.bad} bad" if sample.bad else ""
                        line.append(f"{kind} {us:4.0f} µs ({rate:5.0f}/s{errors})")
                    print(f"  round {round_no + 1} {variant.name:<34} " + "  ".join(line))
            report(group, kinds, group[0])
            cpus = os.cpu_count() or 1
            print(
                f"\n{time.monotonic() - began:.0f} s of samples; the machine was busy "
                f"{busy_total / seconds_total:.2f} of {cpus} CPUs meanwhile (the gateway under "
                f"test {gateway_total / seconds_total:.2f}, the rest wrk, the upstream and other "
                f"work); load average {Path('/proc/loadavg').read_text().split()[:3]}; "
                f"{bad_total} non-2xx answers or socket errors"
            )
        except KeyboardInterrupt:
            print("\nbench.gateway_cost: interrupted", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stop_all(started)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
