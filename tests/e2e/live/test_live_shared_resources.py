"""No client exhausts what others share (v1.2, "Shared resources"), on the running system: live
streams limited per client address (`429 too_many_streams` with Retry-After) through the
gateway, the address being the one the gateway vouches for; a storm of joins of one day's
stream all served, directly and through the gateway; `retry:` with jitter; hostile
X-Forwarded-For values answered without a 5xx.

A test's clients have addresses of their own: any of 127.0.0.0/8 is this machine, and the
gateway (which trusts only 127.0.0.1 as a proxy) names each by its own."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

from live_service.sse import RETRY_MAX_MS, RETRY_MIN_MS
from tests.e2e.live import test_live_resilience as resilience
from tests.e2e.live.sse_client import EventStream
from tests.e2e.live.test_live_resilience import assert_error_shape_of
from tests.e2e.live.test_live_stream import live_path, tomorrow

live_process = resilience.live_process  # live processes of a test's own (stopped after)

PER_CLIENT = 32  # LIVE_STREAMS_PER_CLIENT's default
_addresses = itertools.count(1)


def new_address() -> str:
    """A loopback address no other test of this session uses (127.0.100.1 ...)."""
    n = next(_addresses)
    return f"127.{100 + n // 250}.{n % 250}.1"


def open_many(base: str, path: str, count: int, **options) -> list[EventStream]:
    streams = []
    try:
        for _ in range(count):
            streams.append(EventStream(base, path, **options))
    except BaseException:
        for stream in streams:
            stream.close()
        raise
    return streams


# --------------------------------------------------------------------------- limits


def test_one_client_over_its_limit_is_refused_while_another_is_served(gateway, hospital):
    path = live_path(hospital["hospital_id"], tomorrow())
    me, other = new_address(), new_address()
    mine = open_many(gateway.base, path, PER_CLIENT, source=me)
    try:
        assert {s.status for s in mine} == {200}
        with EventStream(gateway.base, path, source=me) as over:
            assert_error_shape_of(over, 429)
            assert int(over.headers["Retry-After"]) > 0
        with EventStream(gateway.base, path, source=other) as served:
            assert served.status == 200
            assert served.next_event().name == "resync"
        # One of mine ends: I may open another.
        mine.pop().close()
        deadline = time.monotonic() + 10
        while True:
            again = EventStream(gateway.base, path, source=me)
            if again.status == 200 or time.monotonic() > deadline:
                break
            again.close()
            time.sleep(0.2)
        mine.append(again)
        assert again.status == 200
    finally:
        for stream in mine:
            stream.close()


def test_the_error_of_a_client_over_its_limit_is_the_contracts(gateway, hospital):
    path = live_path(hospital["hospital_id"], tomorrow())
    me = new_address()
    mine = open_many(gateway.base, path, PER_CLIENT, source=me)
    try:
        with EventStream(gateway.base, path, source=me) as over:
            assert over.status == 429
            body = over.json()
            assert body["code"] == 429 and body["status"] == "Too Many Requests"
            assert body["error"] == "too_many_streams" and body["message"]
            assert over.headers["X-Request-ID"]
    finally:
        for stream in mine:
            stream.close()


def spoofing_stays_within_the_limit(gateway, hospital, source: str, again: str) -> None:
    """From `source`, PER_CLIENT streams each naming another address in X-Forwarded-For are
    served, and one more (naming `again`) is 429: the header escaped nothing."""
    path = live_path(hospital["hospital_id"], tomorrow())
    spoofed = [
        EventStream(gateway.base, path, {"X-Forwarded-For": f"198.51.100.{i}"}, source=source)
        for i in range(PER_CLIENT)
    ]
    try:
        assert {s.status for s in spoofed} == {200}
        with EventStream(gateway.base, path, {"X-Forwarded-For": again}, source=source) as over:
            assert over.status == 429
    finally:
        for stream in spoofed:
            stream.close()


def test_x_forwarded_for_sent_to_the_gateway_does_not_escape_the_limit(gateway, hospital):
    """The gateway replaces what an untrusted client says with its address."""
    spoofing_stays_within_the_limit(
        gateway, hospital, new_address(), "203.0.113.200, 198.51.100.250"
    )


def test_a_client_on_the_gateways_own_machine_cannot_name_another_address(gateway, hospital):
    """From 127.0.0.1, a peer the gateway trusts (its X-Forwarded-For is extended, not
    replaced), the header still names no other client: the live service looks at one hop
    (LIVE_PROXY_HOPS), the gateway's own entry."""
    spoofing_stays_within_the_limit(gateway, hospital, "127.0.0.1", "203.0.113.201")


def test_x_forwarded_for_from_a_peer_the_live_service_does_not_trust_is_ignored(
    hospital, live_process
):
    live = live_process(
        "live-trusts-none", LIVE_TRUSTED_PROXIES="192.0.2.1", LIVE_STREAMS_PER_CLIENT="2"
    )
    path = live_path(hospital["hospital_id"], tomorrow())
    first = EventStream(live.url, path, {"X-Forwarded-For": "198.51.100.1"})
    second = EventStream(live.url, path, {"X-Forwarded-For": "198.51.100.2"})
    try:
        assert (first.status, second.status) == (200, 200)
        third = requests.get(
            live.url + path, headers={"X-Forwarded-For": "198.51.100.3"}, timeout=10
        )
        assert third.status_code == 429
        assert third.json()["error"] == "too_many_streams"
        assert int(third.headers["Retry-After"]) > 0
    finally:
        first.close()
        second.close()


# --------------------------------------------------------------------------- storms


async def _join(
    base: str, path: str, source: str | None, started: float, timeout: float
) -> tuple[int | str, float | None, float | None]:
    """One stream opened at once with the others: its status, when its headers came and when
    its first event did (seconds from `started`)."""
    url = urlsplit(base)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                url.hostname, url.port, local_addr=(source, 0) if source else None
            )
            try:
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                    "Accept: text/event-stream\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split()[1])
                headers_at = loop.time() - started
                if status != 200:
                    return status, headers_at, None
                body = b""
                while b"event: resync" not in body:
                    data = await reader.read(65536)
                    if not data:
                        return "closed", headers_at, None
                    body += data
                return status, headers_at, loop.time() - started
            finally:
                writer.close()
    except (TimeoutError, OSError) as exc:
        return type(exc).__name__, None, None


def storm(
    base: str, path: str, count: int, sources: list[str | None], timeout: float = 30.0
) -> list[tuple[int | str, float | None, float | None]]:
    """`count` streams opened at once (spread over `sources`); each one's outcome."""

    async def main():
        started = asyncio.get_running_loop().time()
        return await asyncio.gather(
            *(_join(base, path, sources[i % len(sources)], started, timeout) for i in range(count))
        )

    return asyncio.run(main())


def test_a_storm_of_joins_of_one_day_is_all_served_through_the_gateway(gateway, hospital):
    """1,000 viewers open one day's stream at once (25 from each address, as waiting rooms
    behind NATs reconnecting after a gateway reload): every one is answered 200 and gets its
    first event. (The live service's accept queue held 128 connections: the rest timed out at
    the gateway, and its breaker then refused every stream for a while.)"""
    path = live_path(hospital["hospital_id"], tomorrow())
    sources = [new_address() for _ in range(40)]
    outcomes = storm(gateway.base, path, 1000, sources)
    statuses = Counter(status for status, _, _ in outcomes)
    assert statuses == {200: 1000}, statuses
    firsts = sorted(first for _, _, first in outcomes if first is not None)
    assert len(firsts) == 1000 and firsts[-1] < 20, firsts[-5:]


class _SlowProxy(BaseHTTPRequestHandler):
    """The booking service's GET answers, each after `server.delay` seconds, counted."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        server = self.server
        with server.lock:  # type: ignore[attr-defined]
            server.reads[self.path.split("/")[2]] += 1  # type: ignore[attr-defined]
        time.sleep(server.delay)  # type: ignore[attr-defined]
        upstream = requests.get(server.target + self.path, timeout=10)  # type: ignore[attr-defined]
        body = upstream.content
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def slow_booking(stack) -> Iterator[ThreadingHTTPServer]:
    """The stack's booking service behind a proxy that takes 1.2 s for each answer (longer than
    the hub's reuse window, REUSE_SECONDS)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowProxy)
    server.daemon_threads = True
    server.delay = 1.2  # type: ignore[attr-defined]
    server.target = stack.booking_url  # type: ignore[attr-defined]
    server.reads = Counter()  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def slow_live(live_process, slow_booking):
    """A live process of the test's own whose booking service answers in 1.2 s."""
    port = slow_booking.server_address[1]
    return live_process("live-slow-booking", BOOKING_SERVICE_URL=f"http://127.0.0.1:{port}")


def test_a_storm_of_joins_directly_costs_one_read_and_all_are_served(
    hospital, slow_live, slow_booking
):
    """300 clients open one day's stream at once on one process, while each state takes 1.2 s
    to read: one read serves them all (one join at a time, a read each, took minutes); then
    300 more of another day of the same hospital get their headers at once, before the read
    their first event waits for."""
    hid = hospital["hospital_id"]
    sources = [new_address() for _ in range(10)]
    outcomes = storm(slow_live.url, live_path(hid, tomorrow()), 300, sources)
    assert Counter(status for status, _, _ in outcomes) == {200: 300}
    assert max(first for _, _, first in outcomes) < 15
    assert slow_booking.reads["availability"] <= 3, slow_booking.reads

    # The hospital is known now: another day's streams answer their headers before any read.
    other_day = str(tomorrow().fromordinal(tomorrow().toordinal() + 1))
    sources = [new_address() for _ in range(10)]  # the first ones' streams may still count
    outcomes = storm(slow_live.url, live_path(hid, other_day), 300, sources)
    assert Counter(status for status, _, _ in outcomes) == {200: 300}
    headers = sorted(at for _, at, _ in outcomes if at is not None)
    firsts = sorted(first for _, _, first in outcomes if first is not None)
    assert len(firsts) == 300
    assert headers[len(headers) // 2] < firsts[0], (headers[len(headers) // 2], firsts[0])
    assert slow_booking.reads["availability"] <= 6, slow_booking.reads


def test_a_storm_of_joins_through_the_gateway_while_reads_are_slow_is_all_served(
    stack, hospital, slow_live, slow_booking
):
    """500 clients at once through a gateway, while each state takes 1.2 s to read: all are
    answered 200 and get their first event (a read per join, one at a time, outlasted the
    gateway's UPSTREAM_READ_TIMEOUT: 504s, then the breaker refused every stream)."""
    gateway = stack.new_gateway("gateway-slow-live", upstreams={"live": [slow_live.url]}).start()
    try:
        sources = [new_address() for _ in range(20)]
        outcomes = storm(gateway.url, live_path(hospital["hospital_id"], tomorrow()), 500, sources)
    finally:
        gateway.stop()
    assert Counter(status for status, _, _ in outcomes) == {200: 500}
    assert max(first for _, _, first in outcomes) < 15
    assert slow_booking.reads["availability"] <= 3, slow_booking.reads


# --------------------------------------------------------------------------- the stream


def test_a_stream_begins_with_a_retry_in_the_jitter_range(gateway, hospital):
    path = live_path(hospital["hospital_id"], tomorrow())
    delays = []
    for _ in range(10):
        with EventStream(gateway.base, path) as stream:
            assert stream.next_event().name == "resync"
            assert stream.retry is not None
            delays.append(stream.retry)
    assert all(RETRY_MIN_MS <= d <= RETRY_MAX_MS for d in delays), delays
    assert len(set(delays)) > 1, delays


def assert_served_or_refused(stream: EventStream, through_gateway: bool) -> None:
    """A stream, or the limit's 429; or, from the gateway, the 431 Go's HTTP server answers
    for headers it finds too large before Caddy sees them (README, Known limits). Never a
    5xx."""
    allowed = (200, 429, 431) if through_gateway else (200, 429)
    assert stream.status in allowed, stream.status


ODD_FORWARDED_FOR = [
    "x" * 100_000,
    ", ".join(f"10.0.{i // 250}.{i % 250}" for i in range(5000)),
    "unknown",
    "::::",
    "[::1",
    "1.2.3.4:99999:1",
    "2001:db8::1%eth0",
    "999.999.999.999",
    "  ,  ,  ",
    "é, ü",
]


@pytest.mark.parametrize("value", ODD_FORWARDED_FOR, ids=range(len(ODD_FORWARDED_FOR)))
def test_odd_x_forwarded_for_values_are_never_a_5xx(gateway, stack, hospital, value):
    path = live_path(hospital["hospital_id"], tomorrow())
    for base in (gateway.base, stack.live_url):
        with EventStream(base, path, [("X-Forwarded-For", value)], source=new_address()) as s:
            assert_served_or_refused(s, base == gateway.base)


def test_many_x_forwarded_for_lines_are_never_a_5xx(gateway, stack, hospital):
    path = live_path(hospital["hospital_id"], tomorrow())
    lines = [("X-Forwarded-For", f"198.51.100.{i % 250}") for i in range(2000)]
    lines += [(f"X-Other-{i}", "v" * 10) for i in range(2000)]
    for base in (gateway.base, stack.live_url):
        with EventStream(base, path, lines, source=new_address()) as stream:
            assert_served_or_refused(stream, base == gateway.base)
            if stream.status == 200:
                assert stream.next_event().name == "resync"
