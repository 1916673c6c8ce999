"""The live streams under load: how many `GET /api/live/...` streams the gateway holds open on
this machine, and how long a booking's event takes to reach every one of them.

1. Open `total` streams through the gateway, in batches; a stream counts as held once its
   first event (the `resync`) arrived. After a quiet `hold_seconds`, count the streams still
   open (heartbeats keep them).
2. Keep `latency_streams` of them and book, one at a time, `bookings` places in the streamed
   day: for each booking, the delay from its `201` to the `availability` event on every
   stream. Reported as p50 / p99 / max over all (booking, stream) pairs.

One asyncio process (aiohttp's client) holds every stream: a connection each, no thread.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

BATCH = 100  # streams opened at once (the next batch once these have their resync)


def raise_open_files_limit() -> int:
    """The soft limit of open files raised to the hard one (each stream is a socket here, two
    in the gateway and one in the live service); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass
class Stream:
    """One open stream: its events as (arrival time, name), as they come."""

    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    resynced: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    failure: str | None = None  # why it did not open: a status, or the error's name


async def _follow(session: aiohttp.ClientSession, url: str, stream: Stream) -> None:
    """Read one stream until it ends, parsing its events (`event:` and `data:` lines)."""
    name = "message"
    try:
        async with session.get(url, headers={"Accept": "text/event-stream"}) as resp:
            if resp.status != 200:
                stream.failure = str(resp.status)
                return
            async for raw in resp.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line == "":
                    if name == "resync":
                        stream.resynced.set()
                    stream.events.put_nowait((time.monotonic(), name))
                    name = "message"
    except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
        if not stream.resynced.is_set():
            stream.failure = type(exc).__name__
    finally:
        stream.closed = True


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _book(session: aiohttp.ClientSession, base: str, token: str, body: dict) -> float:
    """Book one place; the instant its 201 arrived."""
    async with session.post(
        f"{base}/api/appointments",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    ) as resp:
        await resp.read()
        if resp.status != 201:
            raise RuntimeError(f"booking answered {resp.status}")
        return time.monotonic()


async def _measure(
    base: str,
    token: str,
    url: str,
    bookings: list[dict],
    total: int,
    latency_streams: int,
    hold_seconds: float,
) -> dict:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        streams: list[Stream] = []
        tasks: list[asyncio.Task] = []
        started = time.monotonic()
        for first in range(0, total, BATCH):
            batch = [Stream() for _ in range(min(BATCH, total - first))]
            streams += batch
            tasks += [asyncio.create_task(_follow(session, url, s)) for s in batch]
            await asyncio.wait([asyncio.create_task(s.resynced.wait()) for s in batch], timeout=30)
        opened = sum(s.resynced.is_set() for s in streams)
        failures = Counter(
            s.failure or "no event in 30 s" for s in streams if not s.resynced.is_set()
        )
        open_seconds = time.monotonic() - started
        await asyncio.sleep(hold_seconds)
        held = sum(s.resynced.is_set() and not s.closed for s in streams)

        # Latency: keep `latency_streams`, close the others.
        watched = [s for s in streams if s.resynced.is_set() and not s.closed][:latency_streams]
        for s, t in zip(streams, tasks, strict=True):
            if s not in watched:
                t.cancel()
        for s in watched:
            while not s.events.empty():
                s.events.get_nowait()
        delays: list[float] = []
        missed = 0
        async with aiohttp.ClientSession() as booker:
            for body in bookings:
                sent = await _book(booker, base, token, body)
                for s in watched:
                    try:
                        while True:
                            arrived, name = await asyncio.wait_for(s.events.get(), timeout=10)
                            if name == "availability":
                                delays.append(arrived - sent)
                                break
                    except TimeoutError:
                        missed += 1
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "streams_asked": total,
        "streams_opened": opened,
        "streams_not_opened": dict(failures),
        "open_seconds": round(open_seconds, 1),
        "streams_held_after_idle": held,
        "idle_seconds": hold_seconds,
        "latency_streams": len(watched),
        "bookings": len(bookings),
        "events_missed": missed,
        "delay_p50_ms": round(_percentile(delays, 0.50) * 1000, 1),
        "delay_p99_ms": round(_percentile(delays, 0.99) * 1000, 1),
        "delay_max_ms": round(max(delays, default=0.0) * 1000, 1),
    }


def measure_streams(
    gateway_url: str,
    token: str,
    hospital_id: str,
    day: str,
    bookings: list[dict],
    total: int,
    latency_streams: int,
    hold_seconds: float = 20.0,
) -> dict:
    """Run both measurements against a running system; the figures as a dict."""
    limit = raise_open_files_limit()
    url = f"{gateway_url}/api/live/{hospital_id}/{day}"
    result = asyncio.run(
        _measure(gateway_url, token, url, bookings, total, latency_streams, hold_seconds)
    )
    result["open_files_limit"] = limit
    return result
