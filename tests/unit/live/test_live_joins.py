"""The live service's stream endpoint in this process (its aiohttp app on a loopback port of its
own), over a fake of its Redis streams and of the booking service: joins that never wait on one
another (one read for a burst, headers at once for a hospital it knows), `retry:`, the limits per
client and per process, and X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from live_service import create_app
from live_service.booking_client import Answer, BookingUnavailable
from live_service.hub import Client, Hub
from live_service.settings import LiveSettings
from live_service.sse import NO_ID, RETRY_MAX_MS, RETRY_MIN_MS
from live_service.streams import Positions, Replay, Topic
from live_service.views import LIVE

DAY = "2026-11-25"
OTHER_DAY = "2026-11-26"


class FakeStreams:
    """A topic's Redis streams: `moving` makes every read of the positions find a new entry
    (a busy day), so that no state read can be reused for the next one."""

    def __init__(self, moving: bool = False):
        self.moving = moving
        self.newest = (1000, 0)
        self.position_reads = 0

    async def positions(self, topic: Topic) -> Positions:
        self.position_reads += 1
        await asyncio.sleep(0)
        if self.moving:
            self.newest = (self.newest[0] + 1, 0)
        return Positions(self.newest, NO_ID)

    async def replay(self, topic: Topic, last_seen, upto: Positions) -> Replay | None:
        return None

    async def read(self, topic: Topic, since: Positions, block_ms: int):
        await asyncio.sleep(3600)  # no new entry while a test runs
        return [], since


class FakeBooking:
    """The booking service's two answers; `delay` per read, and `gate` (when set) held shut
    until a test opens it. Hospital `nope` does not exist."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.gate: asyncio.Event | None = None
        self.reads: Counter[str] = Counter()
        self.down = False

    async def _answer(self, kind: str, topic: Topic) -> Answer:
        self.reads[kind] += 1
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        if self.down:
            raise BookingUnavailable("down")
        if topic.hospital_id == "nope":
            return Answer(404, {"code": 404, "status": "Not Found", "error": "hospital_not_found",
                                "message": "No hospital 'nope'"})  # fmt: skip
        return Answer(200, {"kind": kind, "hospital_id": topic.hospital_id, "date": topic.day})

    async def availability(self, topic: Topic, request_id=None) -> Answer:
        return await self._answer("availability", topic)

    async def queue(self, topic: Topic, request_id=None) -> Answer:
        return await self._answer("queue", topic)


@dataclasses.dataclass
class Stream:
    """One raw HTTP/1.1 GET: its status and headers, then what its body brings."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]
    raw: bytes = b""

    async def until(self, marker: bytes, timeout: float = 10.0) -> bytes:
        """The body so far, once it holds `marker` (chunk framing left in: markers are short
        and each is written whole)."""
        async with asyncio.timeout(timeout):
            while marker not in self.raw:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError(f"closed before {marker!r}: {self.raw[:300]!r}")
                self.raw += data
        return self.raw

    async def json(self) -> dict:
        length = int(self.headers["content-length"])
        async with asyncio.timeout(5):
            while len(self.raw) < length:
                self.raw += await self.reader.read(65536)
        return json.loads(self.raw)

    def close(self) -> None:
        self.writer.close()


async def open_stream(
    port: int, path: str, headers: list[tuple[str, str]] = (), timeout: float = 10.0
) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", "Host: live", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in headers]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
    status_line, *rest = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in rest if ":" in line)
    fields = {name.lower(): value.strip() for name, value in fields.items()}
    return Stream(reader, writer, int(status_line.split()[1]), fields)


def run(
    scenario: Callable[[int, Hub, FakeBooking, FakeStreams], Awaitable[None]],
    booking: FakeBooking | None = None,
    streams: FakeStreams | None = None,
    **settings,
) -> None:
    """Serve the live app on a free loopback port over the fakes, and run `scenario(port, hub,
    booking, streams)` against it."""
    from aiohttp import web

    booking = booking or FakeBooking()
    streams = streams or FakeStreams()
    defaults = {"heartbeat_seconds": 30.0, "redis_url": "redis://127.0.0.1:1/0"}
    app = create_app(LiveSettings(**{**defaults, **settings}))
    hub = Hub(streams, booking)  # type: ignore[arg-type]

    async def fakes(app: web.Application) -> None:
        app[LIVE].hub = hub

    app.on_startup.append(fakes)

    async def main() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with asyncio.timeout(60):
                await scenario(port, hub, booking, streams)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def path(day: str = DAY, hospital: str = "gomoti") -> str:
    return f"/api/live/{hospital}/{day}"


def xff(address: str) -> list[tuple[str, str]]:
    return [("X-Forwarded-For", address)]


# --------------------------------------------------------------------------- joins


def test_a_burst_of_joins_of_a_busy_day_costs_one_read_and_no_join_waits_for_another():
    """300 clients open one day's stream at once while its stream keeps moving and each state
    takes 0.3 s to read: every one gets its headers and its resync in about one read's time.
    (One read per join, one at a time, under the topic's lock, took 300 x 0.3 s.)"""

    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def one(i: int) -> tuple[float, float]:
            stream = await open_stream(port, path(), xff(f"198.51.100.{i % 200}"), timeout=20)
            assert stream.status == 200, stream.status
            headers_at = loop.time() - started
            await stream.until(b"event: resync", timeout=20)
            stream.close()
            return headers_at, loop.time() - started

        times = await asyncio.gather(*(one(i) for i in range(300)))
        assert max(first for _, first in times) < 5.0, max(times)
        # One read of each state for the whole burst (a second for clients that came after the
        # first read had begun), and one read of the positions for each.
        assert booking.reads["availability"] <= 3, booking.reads
        assert streams.position_reads <= 3

    run(scenario, FakeBooking(delay=0.3), FakeStreams(moving=True))


def test_a_stream_of_a_hospital_it_knows_answers_its_headers_before_its_first_state():
    """Once the booking service has answered for a hospital, 300 new streams of it (another
    day, so nothing can be reused) get their headers and `retry:` at once although the state
    they start with is not read yet; their resync follows when it is."""

    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        first = await open_stream(port, path())
        await first.until(b"event: resync")
        booking.gate = asyncio.Event()  # every read waits from now on

        async def one(i: int) -> Stream:
            stream = await open_stream(port, path(OTHER_DAY), xff(f"198.51.100.{i % 200}"))
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            await stream.until(b"retry: ", timeout=5)
            return stream

        opened = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(300))), 10)
        assert all(b"event:" not in s.raw for s in opened)  # nothing read yet
        booking.gate.set()
        for stream in opened:
            assert b"event: resync" in await stream.until(b"event: resync")
            stream.close()
        assert booking.reads["availability"] <= 3  # one for the first, one for the burst
        first.close()

    run(scenario)


def test_an_unknown_hospital_is_still_the_booking_services_404():
    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        refused = await asyncio.gather(
            *(open_stream(port, path(hospital="nope")) for _ in range(20))
        )
        for stream in refused:
            assert stream.status == 404
            assert (await stream.json())["error"] == "hospital_not_found"
            stream.close()
        assert booking.reads["availability"] <= 2
        assert not hub.feeds  # nothing left behind

    run(scenario)


def test_with_the_booking_service_down_a_stream_of_a_known_hospital_waits_connected():
    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        first = await open_stream(port, path())
        await first.until(b"event: resync")
        booking.down = True
        waiting = await open_stream(port, path(OTHER_DAY))
        assert waiting.status == 200
        await waiting.until(b": keep-alive")  # a comment after each try
        booking.down = False
        await waiting.until(b"event: resync")
        # a hospital it does not know cannot start while the booking service is down
        booking.down = True
        unknown = await open_stream(port, path(hospital="other"))
        assert unknown.status == 503
        assert (await unknown.json())["error"] == "service_unavailable"
        for stream in (first, waiting, unknown):
            stream.close()

    run(scenario)


def test_every_stream_starts_with_its_own_retry_in_the_jitter_range():
    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        delays = []
        for i in range(12):
            stream = await open_stream(port, path(), xff(f"198.51.100.{i}"))
            body = await stream.until(b"event: resync")
            match = re.search(rb"retry: (\d+)\r?\n\r?\n", body)
            assert match and body.index(b"retry:") < body.index(b"event:")
            delays.append(int(match.group(1)))
            stream.close()
        assert all(RETRY_MIN_MS <= d <= RETRY_MAX_MS for d in delays), delays
        assert len(set(delays)) > 1, delays

    run(scenario)


def test_clients_that_join_together_each_get_their_own_first_events_in_order():
    """A batch of joins: every client is offered the events after the position its first
    state covers, once; none before it."""

    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        topic = Topic("gomoti", DAY, None)
        clients = [Client(8) for _ in range(50)]
        firsts = await asyncio.gather(*(hub.join(topic, c, None, None) for c in clients))
        assert {(f[0].name, f[0].id) for f in firsts} == {("resync", (1000, 0))}
        assert {c.floor for c in clients} == {(1000, 0)}
        feed = hub.feeds[topic]
        await hub._publish(feed, {"availability": (1000, 0)}, Positions((1000, 0), NO_ID))
        await hub._publish(feed, {"availability": (1001, 0)}, Positions((1001, 0), NO_ID))
        for client in clients:
            assert client.queue.qsize() == 1 and client.queue.get_nowait().id == (1001, 0)
        for client in clients:
            hub.leave(topic, client)
        assert not hub.feeds

    run(scenario)


# --------------------------------------------------------------------------- limits


def test_one_client_over_its_limit_is_refused_429_while_another_is_served():
    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        mine = [await open_stream(port, path(), xff("203.0.113.7")) for _ in range(3)]
        assert [s.status for s in mine] == [200, 200, 200]
        over = await open_stream(port, path(OTHER_DAY), xff("203.0.113.7"))
        assert over.status == 429
        assert int(over.headers["retry-after"]) > 0
        assert over.headers["content-type"].startswith("application/json")
        body = await over.json()
        assert body["code"] == 429 and body["error"] == "too_many_streams" and body["message"]
        assert body["status"] == "Too Many Requests"
        other = await open_stream(port, path(), xff("203.0.113.8"))
        assert other.status == 200
        await other.until(b"event: resync")
        # One of its streams ends: the client may open another at once.
        mine[0].close()
        for _ in range(50):
            again = await open_stream(port, path(), xff("203.0.113.7"))
            if again.status == 200:
                break
            again.close()
            await asyncio.sleep(0.05)
        assert again.status == 200
        for stream in [*mine, over, other, again]:
            stream.close()

    run(scenario, streams_per_client=3)


def test_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit():
    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        opened = [await open_stream(port, path(), xff(f"198.51.100.{i}")) for i in range(3)]
        assert [s.status for s in opened] == [200, 200, 200]
        spoofed = await open_stream(port, path(), xff("198.51.100.99"))
        assert spoofed.status == 429  # all four are the peer, 127.0.0.1
        for stream in [*opened, spoofed]:
            stream.close()

    run(scenario, streams_per_client=3, trusted_proxies="192.0.2.1")


def test_beyond_its_total_a_process_refuses_429_with_a_retry_after():
    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        held = [await open_stream(port, path(), xff(f"198.51.100.{i}")) for i in range(2)]
        full = await open_stream(port, path(), xff("198.51.100.50"))
        assert full.status == 429
        assert 5 <= int(full.headers["retry-after"]) <= 15
        assert (await full.json())["error"] == "too_many_streams"
        for stream in [*held, full]:
            stream.close()

    run(scenario, max_connections=2)


ODD_FORWARDED_FOR = [
    "x" * 500_000,
    ", ".join(["198.51.100.1"] * 20_000),
    "unknown",
    "::::",
    "[",
    "[::1",
    "1.2.3.4:99999:1",
    "2001:db8::1%eth0",
    "fe80::1%25" + "a" * 200,
    "  ,  ,  ",
    "\t198.51.100.1",
    "é, ü",
    "999.999.999.999",
    "0.0.0.0",
    "255.255.255.255",
    "::",
]


@pytest.mark.parametrize("value", ODD_FORWARDED_FOR, ids=range(len(ODD_FORWARDED_FOR)))
def test_odd_x_forwarded_for_values_never_make_a_5xx(value):
    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        stream = await open_stream(port, path(), [("X-Forwarded-For", value)])
        assert stream.status in (200, 429), stream.status
        stream.close()

    run(scenario)


def test_many_header_lines_never_make_a_5xx():
    async def scenario(port: int, hub: Hub, booking: FakeBooking, streams: FakeStreams) -> None:
        lines = [("X-Forwarded-For", f"198.51.100.{i % 250}") for i in range(5000)]
        lines += [(f"X-Other-{i}", "v") for i in range(5000)]
        stream = await open_stream(port, path(), lines)
        assert stream.status == 200
        await stream.until(b"event: resync")
        stream.close()
        # Repeated lines of one address: one client each; 40 of them, all served.
        opened = [
            await open_stream(port, path(), [("X-Forwarded-For", f"198.51.100.{i}")] * 3)
            for i in range(40)
        ]
        assert {s.status for s in opened} == {200}
        for s in opened:
            s.close()

    run(scenario)
