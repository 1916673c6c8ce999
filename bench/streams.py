"""The live streams at scale, through the gateway (issue 23, "Bench at scale"):

1. **Storm.** `storm` streams opened at once (every connection started together), from
   client addresses of their own (`per_address` streams each, under LIVE_STREAMS_PER_CLIENT:
   any of 127.0.0.0/8 is this machine): how many were answered 200, and when their headers
   and their first event came.
2. **A booking reaches every one.** Bookings into the streamed day, one at a time: the delay
   from each `201` to the `availability` event on every stream of the storm (p50 / p99 / max
   over all (booking, stream) pairs).
3. **Hold.** More streams, in batches, up to `hold` open in all; after `idle_seconds`, how many
   are still open (heartbeats keep them), whether the API still answers (availability reads
   and a booking through the gateway, and that booking's delay on every held stream), and
   each process's memory per stream: its RSS (/proc/PID/status) before the first stream and
   with every stream held, and its open files.

One asyncio process holds every stream (a socket each, no thread).

    python -m bench.streams                      # its own stack: 2,000 at once, 10,000 held
    python -m bench.streams --storm 500 --hold 2000 --per-address 25
`make bench` runs the same against its stack (BENCH_STREAM_STORM, BENCH_STREAMS).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests

from devstack.run import raise_open_files_limit
from devstack.stack import Stack

HOLD_BATCH = 500  # streams opened at once while building up to `hold`
FIRST_EVENT_SECONDS = 30.0  # a stream without its first event by then is counted as not held
EVENT_SECONDS = 10.0  # a booking's event not on a stream by then is missed
RESULTS = Path(__file__).resolve().parent / "results" / "streams-latest.json"


# --------------------------------------------------------------------------- one stream


@dataclass
class Stream:
    """One stream: its status, when its headers and first event came, its events as they
    come (arrival, name), and whether it is still open."""

    source: str
    status: int | str | None = None
    headers_at: float | None = None
    first_at: float | None = None
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    first: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


async def _follow(host: str, port: int, path: str, stream: Stream, started: float) -> None:
    """Open one stream and read it until it ends or the task is cancelled: the chunked body
    decoded, each event's name queued as it arrives."""
    loop = asyncio.get_running_loop()
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(stream.source, 0))
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
            .encode()
        )  # fmt: skip
        head = await reader.readuntil(b"\r\n\r\n")
        stream.status = int(head.split(b" ", 2)[1])
        stream.headers_at = loop.time() - started
        if stream.status != 200:
            return
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return
            body += (await reader.readexactly(size + 2))[:-2]
            while b"\n\n" in body:
                block, body = body.split(b"\n\n", 1)
                name = next(
                    (ln[6:].strip() for ln in block.split(b"\n") if ln.startswith(b"event:")), None
                )
                if name is None:
                    continue  # retry:, or a comment
                now = loop.time()
                if not stream.first.is_set():
                    stream.first_at = now - started
                    stream.first.set()
                stream.events.put_nowait((now, name.decode()))
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        if stream.status is None:
            stream.status = type(exc).__name__
    finally:
        stream.closed = True
        if writer is not None:
            writer.close()


# --------------------------------------------------------------------------- the processes


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def processes(stack: Stack) -> dict[str, list[int]]:
    """The pids whose memory is measured: the gateway, the live service's workers (its
    gunicorn master holds no stream), the booking service's, and this client."""
    found = {"client": [os.getpid()]}
    for name, service in stack.services.items():
        if service.pid is None:
            continue
        kind = name.split("-")[0]
        if kind == "gateway":
            found.setdefault("gateway", []).append(service.pid)
        elif kind in ("live", "booking"):
            found.setdefault(kind, []).extend(_children(service.pid) or [service.pid])
    return found


def snapshot(pids: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    """Each process's RSS (kB, summed over its pids) and open files."""
    return {
        name: {
            "rss_kb": sum(_rss_kb(pid) for pid in group),
            "open_files": sum(_open_files(pid) for pid in group),
        }
        for name, group in pids.items()
    }


# --------------------------------------------------------------------------- measuring


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_percentile(values, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(values, 0.99) * 1000, 1),
        "max_ms": round(max(values, default=0.0) * 1000, 1),
    }


def _sources(per_address: int):
    """Client addresses of their own, `per_address` streams each: 127.1.0.1, 127.1.0.2, ..."""
    for n in itertools.count(1):
        address = f"127.{1 + n // 62500}.{n // 250 % 250}.{1 + n % 250}"
        for _ in range(per_address):
            yield address


def _post(base: str, path: str, token: str, body: dict) -> requests.Response:
    return requests.post(
        base + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


async def _delays(streams: list[Stream], sent: float) -> tuple[list[float], int]:
    """Each stream's delay from `sent` to its first `availability` event since; and how many
    missed it (none within EVENT_SECONDS)."""

    async def one(stream: Stream) -> float | None:
        try:
            async with asyncio.timeout(EVENT_SECONDS):
                while True:
                    arrived, name = await stream.events.get()
                    if name == "availability":
                        return arrived - sent
        except TimeoutError:
            return None

    found = await asyncio.gather(*(one(s) for s in streams))
    return [d for d in found if d is not None], sum(d is None for d in found)


async def _book_and_time(
    base: str, token: str, body: dict, streams: list[Stream]
) -> tuple[int, list[float], int]:
    """One booking through the gateway; its status, and on every stream the delay from the
    moment its request was sent to its `availability` event (the booking's own time
    included)."""
    for stream in streams:  # only what comes after the booking counts
        while not stream.events.empty():
            stream.events.get_nowait()
    sent = asyncio.get_running_loop().time()
    resp = await asyncio.to_thread(_post, base, "/api/appointments", token, body)
    if resp.status_code != 201:
        return resp.status_code, [], len(streams)
    delays, missed = await _delays(streams, sent)
    return resp.status_code, delays, missed


def _api_check(base: str, hospital_id: str, day: str, count: int = 50) -> dict:
    """`count` availability reads through the gateway, one after another, each on a new
    connection (as new clients come: each needs a file in the gateway): statuses, latency."""
    statuses: Counter[str] = Counter()
    took = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            status = str(
                requests.get(f"{base}/api/availability/{hospital_id}/{day}", timeout=10).status_code
            )
        except requests.RequestException as exc:
            status = type(exc).__name__
        took.append(time.perf_counter() - started)
        statuses[status] += 1
    return {"reads": count, "statuses": dict(statuses), **_ms(took)}


async def _measure(
    stack: Stack,
    token: str,
    hospital_id: str,
    day: str,
    bookings: list[dict],
    storm: int,
    hold: int,
    per_address: int,
    idle_seconds: float,
) -> dict:
    base = stack.gateway_url
    url = urlsplit(base)
    path = f"/api/live/{hospital_id}/{day}"
    pids = processes(stack)
    before = snapshot(pids)
    sources = _sources(per_address)
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task] = []

    def start(count: int, started: float) -> list[Stream]:
        batch = [Stream(next(sources)) for _ in range(count)]
        tasks.extend(
            asyncio.create_task(_follow(url.hostname, url.port, path, s, started)) for s in batch
        )
        return batch

    async def settle(batch: list[Stream]) -> None:
        waits = [asyncio.create_task(s.first.wait()) for s in batch]
        done, pending = await asyncio.wait(waits, timeout=FIRST_EVENT_SECONDS)
        for task in pending:
            task.cancel()
        # those that failed leave no first event: wait for their tasks' outcome too
        while any(s.status is None for s in batch) and loop.time() < deadline:
            await asyncio.sleep(0.1)

    try:
        # 1. the storm
        started = loop.time()
        deadline = started + FIRST_EVENT_SECONDS
        stormed = start(storm, started)
        await settle(stormed)
        statuses = Counter(str(s.status) for s in stormed)
        result: dict = {
            "storm": {
                "streams": storm,
                "addresses": len({s.source for s in stormed}),
                "statuses": dict(statuses),
                "all_200": statuses == Counter({"200": storm}),
                "first_events": sum(s.first.is_set() for s in stormed),
                "headers": _ms([s.headers_at for s in stormed if s.headers_at is not None]),
                "first_event": _ms([s.first_at for s in stormed if s.first_at is not None]),
            }
        }
        after_storm = snapshot(pids)

        # 2. a booking reaches every stream of the storm
        watched = [s for s in stormed if s.first.is_set() and not s.closed]
        delays: list[float] = []
        missed = 0
        for body in bookings:
            status, found, lost = await _book_and_time(base, token, body, watched)
            if status != 201:
                raise RuntimeError(f"booking answered {status}")
            delays += found
            missed += lost
        result["booking_to_storm"] = {
            "streams": len(watched),
            "bookings": len(bookings),
            "missed": missed,
            **_ms(delays),
        }

        # 3. hold
        held_streams = list(stormed)
        while len(held_streams) < hold:
            started = loop.time()
            deadline = started + FIRST_EVENT_SECONDS
            batch = start(min(HOLD_BATCH, hold - len(held_streams)), started)
            held_streams += batch
            await settle(batch)
        opened = [s for s in held_streams if s.first.is_set()]
        refused = Counter(str(s.status) for s in held_streams if not s.first.is_set())
        await asyncio.sleep(idle_seconds)
        still = [s for s in opened if not s.closed]
        during = snapshot(pids)
        api = await asyncio.to_thread(_api_check, base, hospital_id, day)
        extra = dict(bookings[-1])
        extra["patient"] = {"name": "Stream Bench", "phone": "+8801999999999"}
        booked, found, lost = await _book_and_time(base, token, extra, still)
        result["hold"] = {
            "asked": hold,
            "opened": len(opened),
            "not_opened": dict(refused),
            "held_after_idle": len(still),
            "idle_seconds": idle_seconds,
            "api_while_held": {**api, "booking": booked},
            "booking_to_held": {"streams": len(still), "missed": lost, **_ms(found)},
        }
        held = max(1, len(still))
        result["memory"] = {
            name: {
                "rss_mb_before": round(before[name]["rss_kb"] / 1024, 1),
                "rss_mb_after_storm": round(after_storm[name]["rss_kb"] / 1024, 1),
                "rss_mb_held": round(during[name]["rss_kb"] / 1024, 1),
                "kb_per_stream": round((during[name]["rss_kb"] - before[name]["rss_kb"]) / held, 1),
                "open_files_before": before[name]["open_files"],
                "open_files_held": during[name]["open_files"],
            }
            for name in pids
        }
        return result
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def measure_streams(
    stack: Stack,
    token: str,
    hospital_id: str,
    day: str,
    bookings: list[dict],
    storm: int,
    hold: int,
    per_address: int = 25,
    idle_seconds: float = 20.0,
) -> dict:
    """Run the three measurements against a running stack; the figures as a dict. `bookings`:
    bodies of POST /api/appointments into `day` (the last one's slot is booked once more, with
    another phone, while every stream is held)."""
    limit = raise_open_files_limit()
    result = asyncio.run(
        _measure(stack, token, hospital_id, day, bookings, storm, hold, per_address, idle_seconds)
    )
    result["open_files_limit"] = limit
    result["live_stream_capacity"] = _metric(stack.live_url, "live_stream_capacity")
    return result


def _metric(base: str, name: str) -> float | None:
    try:
        text = requests.get(base + "/metrics", timeout=5).text
    except requests.RequestException:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def summary(result: dict) -> list[str]:
    """The figures, as lines for a terminal."""
    storm, to_storm, hold = result["storm"], result["booking_to_storm"], result["hold"]
    lines = [
        f"storm: {storm['streams']} streams at once through the gateway from "
        f"{storm['addresses']} addresses: statuses {storm['statuses']}; headers p50 "
        f"{storm['headers']['p50_ms']} ms p99 {storm['headers']['p99_ms']} ms max "
        f"{storm['headers']['max_ms']} ms; first event p50 {storm['first_event']['p50_ms']} ms "
        f"p99 {storm['first_event']['p99_ms']} ms max {storm['first_event']['max_ms']} ms",
        f"booking -> {to_storm['streams']} streams ({to_storm['bookings']} bookings): p50 "
        f"{to_storm['p50_ms']} ms p99 {to_storm['p99_ms']} ms max {to_storm['max_ms']} ms, "
        f"{to_storm['missed']} missed",
        f"hold: {hold['opened']} of {hold['asked']} opened (not: {hold['not_opened']}), "
        f"{hold['held_after_idle']} held after {hold['idle_seconds']:g} s idle; API while held: "
        f"availability {hold['api_while_held']['statuses']} p50 "
        f"{hold['api_while_held']['p50_ms']} ms p99 {hold['api_while_held']['p99_ms']} ms, "
        f"booking {hold['api_while_held']['booking']}; its event on "
        f"{hold['booking_to_held']['streams']} streams p50 {hold['booking_to_held']['p50_ms']} "
        f"ms p99 {hold['booking_to_held']['p99_ms']} ms, {hold['booking_to_held']['missed']} "
        "missed",
        f"open files limit {result['open_files_limit']}, live stream capacity "
        f"{result['live_stream_capacity']}",
    ]
    for name, m in result["memory"].items():
        lines.append(
            f"  {name:<8} RSS {m['rss_mb_before']} -> {m['rss_mb_held']} MB "
            f"({m['kb_per_stream']} KB per stream), open files {m['open_files_before']} -> "
            f"{m['open_files_held']}"
        )
    return lines


def targets(result: dict) -> list[dict]:
    """The issue's targets: the storm all 200, a booking on every stream with p99 < 1 s, and
    every stream asked for held with the API answering."""
    s, b, h = result["storm"], result["booking_to_storm"], result["hold"]
    storm, hold = s["streams"], h["asked"]
    api = h["api_while_held"]
    return [
        {
            "target": f"{storm} stream opens at once through the gateway all answered 200",
            "value": s["statuses"].get("200", 0),
            "met": s["all_200"] and s["first_events"] == storm,
        },
        {
            "target": f"a booking reaches every one of the {storm} streams, p99 < 1000 ms",
            "value": b["p99_ms"],
            "met": b["streams"] == storm and b["missed"] == 0 and b["p99_ms"] < 1000,
        },
        {
            "target": f"{hold} streams held with the API still answering",
            "value": h["held_after_idle"],
            "met": h["held_after_idle"] >= hold
            and api["statuses"] == {"200": api["reads"]}
            and api["booking"] == 201,
        },
    ]


# --------------------------------------------------------------------------- on its own


def _bench_hospital(base: str, token: str) -> tuple[str, str, list[dict]]:
    """A hospital of the bench's own, every day open 08:00-20:00 in hourly slots of 1,000
    places; tomorrow (in its zone) and booking bodies into it."""
    hospital_id = f"bench-live-{int(time.time())}"
    slots = [{"start": f"{h:02d}:00", "end": f"{h + 1:02d}:00"} for h in range(8, 20)]
    doc = {
        "hospital_id": hospital_id,
        "hospital_name": "Live Bench",
        "timezone": "Asia/Dhaka",
        "schedule": {str(d): {"slots": slots} for d in range(7)},
        "max_appointments_per_slot": 1000,
        "advance_booking_days": 30,
        "date_overrides": {},
    }
    resp = _post(base, "/api/dynamic-slots/hospitals", token, doc)
    if resp.status_code != 201:
        raise RuntimeError(f"creating {hospital_id}: {resp.status_code} {resp.text}")
    day = (datetime.now(ZoneInfo("Asia/Dhaka")).date() + timedelta(days=1)).isoformat()
    bodies = [
        {
            "hospital_id": hospital_id,
            "date": day,
            "slot": slots[i % len(slots)]["start"],
            "patient": {"name": "Stream Bench", "phone": f"+88017{i:08d}"},
        }
        for i in range(5)
    ]
    return hospital_id, day, bodies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__)
    parser.add_argument("--storm", type=int, default=2000, help="streams opened at once")
    parser.add_argument("--hold", type=int, default=10000, help="streams held in all")
    parser.add_argument("--per-address", type=int, default=25, help="streams per client address")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds held idle")
    args = parser.parse_args(argv)
    raise_open_files_limit()  # inherited by the stack's processes
    with tempfile.TemporaryDirectory(prefix="slotbook-streams-") as workdir:
        stack = Stack(
            Path(workdir) / "stack",
            mongo_url=os.environ.get("MONGO_URL") or None,
            redis_url=os.environ.get("REDIS_URL") or None,
            extra_env={"ACCESS_LOG_LEVEL": "WARNING"},
        )
        with stack:
            from bench.__main__ import admin_token

            token = admin_token(stack.gateway_url)
            hospital_id, day, bodies = _bench_hospital(stack.gateway_url, token)
            print(
                f"bench.streams: {args.storm} at once, {args.hold} held, {args.per_address} per "
                f"address, through {stack.gateway_url}",
                flush=True,
            )
            result = measure_streams(
                stack, token, hospital_id, day, bodies, args.storm, args.hold,
                args.per_address, args.idle,
            )  # fmt: skip
            dead = stack.dead_processes()
    result["targets"] = targets(result)
    result["dead_processes"] = dead
    print("\n".join(summary(result)))
    for t in result["targets"]:
        print(f"  {'MET   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0 if all(t["met"] for t in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
