"""Who a live stream's client is (X-Forwarded-For only from trusted proxies), and the limits on
streams per client and per process: the pure parts (live_service/clients.py) and the `retry:`
field every stream starts with."""

from __future__ import annotations

import random
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live_service.clients import (
    UNKNOWN,
    Limits,
    Proxies,
    parse_networks,
    streams_cap,
)
from live_service.settings import LiveSettings
from live_service.sse import RETRY_MAX_MS, RETRY_MIN_MS, retry_field

DEFAULTS = LiveSettings()
# the default: loopback, one hop (the gateway's own entry)
GATEWAY = Proxies(parse_networks(DEFAULTS.trusted_proxies), DEFAULTS.proxy_hops)


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # a direct client is its peer address
        ("203.0.113.9", [], "203.0.113.9"),
        ("127.0.0.1", [], "127.0.0.1"),
        # from an untrusted peer the header is ignored, whatever it says
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        ("203.0.113.9", ["127.0.0.1"], "203.0.113.9"),
        # the gateway (trusted) vouches for its peer: the right-most untrusted entry
        ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["1.1.1.1, 198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["1.1.1.1", "198.51.100.1"], "198.51.100.1"),  # two header lines
        # a client on the gateway's machine (127.0.0.1, as the gateway appended it) cannot
        # name another address: one hop is looked at, whatever the entries before it say
        ("127.0.0.1", ["1.1.1.1, 198.51.100.1, 127.0.0.1"], "127.0.0.1"),
        ("127.0.0.1", ["127.0.0.5, 127.0.0.1"], "127.0.0.1"),
        # an entry that is no address: the proxy that passed it on
        ("127.0.0.1", ["evil"], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.1, evil, 127.0.0.3"], "127.0.0.3"),
        ("127.0.0.1", [""], "127.0.0.1"),
        ("127.0.0.1", ["  198.51.100.1  "], "198.51.100.1"),
        ("127.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
        ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::/64"),
        # IPv6: a client is its /64; an IPv4-mapped address its IPv4 one
        ("127.0.0.1", ["2001:db8::1"], "2001:db8::/64"),
        ("127.0.0.1", ["2001:db8::ffff:1"], "2001:db8::/64"),
        ("2001:db8:0:1::5", ["198.51.100.1"], "2001:db8:0:1::/64"),
        ("::ffff:203.0.113.9", [], "203.0.113.9"),
        ("::1", ["198.51.100.1"], "198.51.100.1"),
        # a peer that is no IP address (a Unix socket)
        (None, ["198.51.100.1"], UNKNOWN),
        ("", [], UNKNOWN),
    ],
)
def test_the_client_is_the_address_a_trusted_proxy_vouches_for(peer, forwarded, client):
    assert GATEWAY.client(peer, forwarded) == client


def test_behind_a_load_balancer_two_hops_are_looked_at():
    """LIVE_PROXY_HOPS=2 (a balancer in front of the gateway, both trusted): the entry before
    the balancer's is the client; never further left."""
    behind = Proxies(parse_networks("127.0.0.0/8 10.0.0.0/8"), 2)
    assert behind.client("127.0.0.1", ["198.51.100.1, 10.0.0.2"]) == "198.51.100.1"
    assert behind.client("127.0.0.1", ["203.0.113.7, 10.0.0.9, 10.0.0.2"]) == "10.0.0.9"
    assert behind.client("127.0.0.1", ["203.0.113.7, 198.51.100.1"]) == "198.51.100.1"


def test_a_client_cannot_pick_its_address_unless_its_peer_is_trusted():
    only_the_gateway = Proxies(parse_networks("192.0.2.1"))
    keys = {only_the_gateway.client("127.0.0.1", [f"198.51.100.{i}"]) for i in range(50)}
    assert keys == {"127.0.0.1"}
    assert only_the_gateway.client("192.0.2.1", ["198.51.100.7"]) == "198.51.100.7"


def test_huge_and_odd_headers_are_answered_at_once():
    started = time.perf_counter()
    many = ", ".join(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(100_000))
    assert GATEWAY.client("127.0.0.1", [many]) == "10.1.134.159"
    assert GATEWAY.client("127.0.0.1", ["x" * 1_000_000]) == "127.0.0.1"
    assert GATEWAY.client("127.0.0.1", ["127.0.0.1"] * 10_000) == "127.0.0.1"
    assert GATEWAY.client("127.0.0.1", [","] * 1000) == "127.0.0.1"
    assert time.perf_counter() - started < 2


@given(st.text(max_size=300), st.lists(st.text(max_size=200), max_size=5))
def test_any_header_names_some_client(peer, forwarded):
    client = GATEWAY.client(peer, forwarded)
    assert isinstance(client, str) and 0 < len(client) <= 64


def test_the_trusted_proxies_setting():
    assert [str(n) for n in parse_networks("127.0.0.0/8 ::1/128")] == ["127.0.0.0/8", "::1/128"]
    assert [str(n) for n in parse_networks("10.0.0.1,  172.16.0.0/12")] == [
        "10.0.0.1/32",
        "172.16.0.0/12",
    ]
    assert parse_networks("") == ()
    for bad in ("localhost", "10.0.0.0/33", "private_ranges", "1.2.3"):
        with pytest.raises(ValueError, match="LIVE_TRUSTED_PROXIES"):
            parse_networks(bad)


def test_one_client_over_its_limit_is_refused_while_others_are_served():
    limits = Limits(per_client=2, total=5)
    assert [limits.take("a"), limits.take("a"), limits.take("a")] == [None, None, "client"]
    assert limits.take("b") is None
    limits.give("a")
    assert limits.take("a") is None
    assert [limits.take("c"), limits.take("d")] == [None, None]
    assert limits.take("e") == "total"  # 5 open: the process is full, whoever asks
    assert limits.open == 5
    for who in ("a", "b", "c", "d"):
        limits.give(who)
    assert limits.by_client == {"a": 1} and limits.open == 1


@pytest.mark.parametrize(
    ("setting", "open_files", "cap"),
    [
        (2, 20000, 2),  # set: as set
        (50000, 1024, 50000),
        (0, 20000, 9000),  # unset: two files per stream in the gateway, a tenth kept back
        (0, 65536, 10000),  # at most 10,000
        (0, 1024, 461),
        (0, 3, 1),
    ],
)
def test_the_total_of_streams_leaves_room_for_the_api(setting, open_files, cap):
    assert streams_cap(setting, open_files) == cap
    if setting == 0:
        assert 2 * cap <= open_files - open_files // 10 or cap == 1


def test_every_stream_starts_with_a_reconnection_delay_drawn_in_a_range():
    rng = random.Random(7)
    delays = []
    for _ in range(200):
        block = retry_field(rng)
        match = re.fullmatch(rb"retry: (\d+)\n\n", block)
        assert match, block
        delays.append(int(match.group(1)))
    assert all(RETRY_MIN_MS <= d <= RETRY_MAX_MS for d in delays)
    assert RETRY_MIN_MS >= 1000 and RETRY_MAX_MS - RETRY_MIN_MS >= 1000
    assert len(set(delays)) > 50  # spread, not one value
