"""The live service when things go wrong: a client that does not read, a restart of the
service, Redis down, the booking service down, more streams than a process takes.

Some of these run a live process of their own (the stack's environment plus a setting or a
dependency of their own), called directly rather than through the gateway."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from devstack.servers import ServiceProcess
from shared import events
from tests.e2e.live.sse_client import EventStream
from tests.e2e.live.test_live_stream import booked, live_path, tomorrow, until
from tests.helpers import assert_error_shape, wait_until


def metric(base_url: str, name: str) -> float:
    """A metric without labels from a service's /metrics (0 when it has no value yet)."""
    text = requests.get(base_url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture
def live_process(stack) -> Iterator[Callable[..., ServiceProcess]]:
    """Start live processes of this test's own: live_process(name, **env); stopped after."""
    started: list[ServiceProcess] = []

    def start(name: str, **env: str) -> ServiceProcess:
        process = stack.extra_service(name, "live", env=env, workers=1)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


def test_a_client_that_does_not_read_is_dropped_while_another_gets_every_event(
    big_hospital, redis_client, live_process
):
    live = live_process("live-slow", LIVE_CLIENT_BUFFER="2", LIVE_HEARTBEAT_SECONDS="30")
    hid, day = big_hospital["hospital_id"], str(tomorrow())
    path = live_path(hid, day)
    # A client that never reads, with a small receive buffer: the kernel's buffers fill after
    # a few events of ~13 KB, then its connection's writes wait, then its queue fills.
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", live.port))
    slow.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    try:
        with EventStream(live.url, path) as fast:
            assert fast.next_event().name == "resync"
            wait_until(lambda: metric(live.url, "live_open_streams") == 2, timeout=10)
            sent = []
            for _ in range(150):
                sent.append(events.publish(redis_client, hid, day, None, events.AVAILABILITY))
                item = fast.next_event(timeout=10)  # each one, in order, at once
                assert (item.name, item.id) == ("availability", sent[-1])
                if metric(live.url, "live_clients_dropped_total") >= 1:
                    break
            else:
                pytest.fail(f"a client that never reads was not dropped after {len(sent)} events")
            # The slow client's connection is closed (after what the kernel held for it).
            slow.settimeout(10)
            with pytest.raises((ConnectionResetError, EOFError)):
                while True:
                    if not slow.recv(65536):
                        raise EOFError
            # The other goes on, and its stream is the only one left.
            entry = events.publish(redis_client, hid, day, None, events.AVAILABILITY)
            assert fast.next_event(timeout=10).id == entry
            assert metric(live.url, "live_open_streams") == 1
    finally:
        slow.close()


def test_after_a_restart_of_the_live_service_a_client_resumes_where_it_was(
    stack, gateway, hospital, redis_client
):
    hid, day = hospital["hospital_id"], str(tomorrow())
    events.publish(redis_client, hid, day, None, events.AVAILABILITY)
    path = live_path(hid, day)
    live = stack.services["live"]
    with EventStream(gateway.base, path) as stream:
        first = stream.next_event()
        live.stop()  # SIGTERM: the process ends every stream cleanly
        with pytest.raises(EOFError):
            while True:
                stream.next_item(timeout=15)
    missed = events.publish(redis_client, hid, day, None, events.AVAILABILITY)  # while down
    live.start()

    def back() -> EventStream:
        """Reconnect with Last-Event-ID, as a browser does (the gateway answers 503 while it
        has not seen the process come back)."""
        deadline = time.monotonic() + 20
        while True:
            again = EventStream(gateway.base, path, {"Last-Event-ID": first.id})
            if again.status == 200:
                return again
            assert_error_shape_of(again, 503)
            again.close()
            assert time.monotonic() < deadline, "the live service did not come back"
            time.sleep(0.5)

    with back() as again:
        item = again.next_event()
        assert (item.name, item.id) == ("availability", missed)  # what it missed, no resync


def assert_error_shape_of(stream: EventStream, status: int) -> None:
    """A stream that did not start answered `status` in the error shape."""
    assert stream.status == status
    assert stream.headers["Content-Type"].startswith("application/json")
    body = stream.json()
    assert body["code"] == status and body["error"] and body["message"]


def test_with_redis_down_a_stream_starts_and_follows_once_it_is_back(
    hospital, redis_factory, live_process
):
    private = redis_factory("live-redis", appendonly=False)
    live = live_process("live-private-redis", REDIS_URL=private.url)
    hid, day = hospital["hospital_id"], str(tomorrow())
    private.stop()
    with EventStream(live.url, live_path(hid, day)) as stream:
        assert stream.status == 200
        first = stream.next_event()
        assert first.name == "resync" and booked(first, "09:00") == 0
        stream.no_event_for(1.5)  # heartbeats go on while the reader retries
        private.start()
        client = private.client()
        try:
            entry = events.publish(client, hid, day, None, events.AVAILABILITY)
        finally:
            client.close()
        # The reader retries with backoff (5 s at most between tries).
        until(stream, lambda item: item.id == entry, timeout=15)


def test_with_the_booking_service_down_a_stream_cannot_start_but_an_open_one_waits(
    stack, hospital, redis_client, live_process
):
    """While the booking service is down, an open stream waits connected, and so does a new
    stream of a hospital the process knows (its headers go at once; its first event follows
    once the state can be read); a hospital it does not know cannot start: 503."""
    booking = stack.extra_service("booking-for-live", "booking", workers=1, threads=2)
    try:
        live = live_process("live-own-booking", BOOKING_SERVICE_URL=booking.url)
        hid, day = hospital["hospital_id"], str(tomorrow())
        path = live_path(hid, day)
        with EventStream(live.url, path) as stream:
            assert stream.next_event().name == "resync"
            booking.stop()
            entry = events.publish(redis_client, hid, day, None, events.AVAILABILITY)
            # A hospital this process never read: its first state cannot be read, nor can it
            # be told from one that does not exist.
            with EventStream(live.url, live_path("gomoti", day)) as refused:
                assert_error_shape_of(refused, 503)
            with EventStream(live.url, path) as waiting:
                assert waiting.status == 200
                stream.no_event_for(2)  # nor the new state: the open stream waits, connected
                booking.start()
                until(stream, lambda item: item.id == entry, timeout=15)
                first = waiting.next_event(timeout=15)
                assert (first.name, first.id) == ("resync", entry)
    finally:
        booking.stop()


def test_beyond_its_limit_a_process_answers_429(hospital, live_process):
    live = live_process("live-limited", LIVE_MAX_CONNECTIONS="2")
    path = live_path(hospital["hospital_id"], tomorrow())
    first, second = EventStream(live.url, path), EventStream(live.url, path)
    try:
        assert (first.status, second.status) == (200, 200)
        third = requests.get(live.url + path, timeout=10)
        assert_error_shape(third, 429, "too_many_streams")
        assert 5 <= int(third.headers["Retry-After"]) <= 15
        first.close()  # its handler ends as its connection does
        wait_until(lambda: metric(live.url, "live_open_streams") == 1, timeout=10)
        with EventStream(live.url, path) as again:
            assert again.status == 200
    finally:
        first.close()
        second.close()
