"""The webhooks' address policy over generated addresses (hypothesis): every address of every
special range is refused, every way an IPv6 address can carry a non-global IPv4 address is
refused, and global addresses (and the 6to4 addresses of global IPv4 ones) are accepted.

The ranges below are the IANA special-purpose registries' (IPv4 and IPv6), written out here on
purpose: the policy reads ipaddress's properties, this test checks it against the registries.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_service.integrations.webhooks.transport import UrlRefused, check_destination, is_public
from shared.errors import ValidationError
from tests.unit.webhooks.webhook_support import make_service, subscribe

V4, V6 = ipaddress.IPv4Network, ipaddress.IPv6Network

# Not globally reachable: every address in these is refused. (IPv4-mapped ::ffff:0:0/96 is not
# listed: a mapped address is the IPv4 address it maps, judged as that, below.)
SPECIAL_V4 = [
    V4("0.0.0.0/8"),  # "this network"
    V4("10.0.0.0/8"),
    V4("100.64.0.0/10"),  # carrier-grade NAT
    V4("127.0.0.0/8"),
    V4("169.254.0.0/16"),  # link-local, cloud metadata
    V4("172.16.0.0/12"),
    V4("192.0.0.0/29"),  # IETF protocol assignments (DS-Lite)
    V4("192.0.0.170/31"),  # NAT64 discovery
    V4("192.0.2.0/24"),  # documentation
    V4("192.168.0.0/16"),
    V4("198.18.0.0/15"),  # benchmarking
    V4("198.51.100.0/24"),
    V4("203.0.113.0/24"),
    V4("224.0.0.0/4"),  # multicast
    V4("240.0.0.0/4"),  # reserved, and the broadcast address
]
SPECIAL_V6 = [
    V6("::/128"),
    V6("::1/128"),
    V6("::/96"),  # IPv4-compatible (deprecated)
    V6("64:ff9b:1::/48"),  # NAT64, local use
    V6("100::/64"),  # discard-only
    V6("2001::/23"),  # IETF protocol assignments, Teredo (2001::/32) among them
    V6("2001:db8::/32"),  # documentation
    V6("fc00::/7"),  # unique local
    V6("fe80::/10"),  # link-local
    V6("fec0::/10"),  # site-local (deprecated)
    V6("ff00::/8"),  # multicast
]
# Globally reachable ones: 8.0.0.0/8 and 1.0.0.0/8 (allocated), 2600::/12 (ARIN), 2a00::/12.
GLOBAL_V4 = [V4("8.0.0.0/8"), V4("1.0.0.0/8"), V4("93.184.0.0/16")]
GLOBAL_V6 = [V6("2600::/12"), V6("2a00::/12"), V6("2400::/12")]
TEREDO = V6("2001::/32")


def inside(networks):
    """Any address of any of `networks`."""
    return st.sampled_from(networks).flatmap(
        lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net[i])
    )


non_global_v4 = inside(SPECIAL_V4)
global_v4 = inside(GLOBAL_V4)
any_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
bits = st.integers


def v6(value: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(value)


def mapped(v4, _):
    return v6(0xFFFF << 32 | int(v4))


def compatible(v4, _):
    return v6(int(v4))


def sixtofour(v4, low80):
    """2002:AABB:CCDD::/48, then any subnet and interface id."""
    return v6(0x2002 << 112 | int(v4) << 80 | low80 % 2**80)


def teredo_server(v4, low64):
    """2001:0:<server>:<flags>:<port>:<client XOR-ed>, the server `v4`."""
    return v6(0x20010000 << 96 | int(v4) << 64 | low64 % 2**64)


def teredo_client(v4, rest):
    """The client `v4` (its bits inverted, as Teredo writes it), any server, flags, port."""
    server, flags_port = rest % 2**32, rest >> 32 & (2**32 - 1)
    return v6(0x20010000 << 96 | server << 64 | flags_port << 32 | (int(v4) ^ 0xFFFFFFFF))


def nat64(v4, _):
    return v6(0x64FF9B << 96 | int(v4))


def nat64_local_96(v4, middle):
    """64:ff9b:1::/48 with the IPv4 address in the last 32 bits (a /96 prefix)."""
    return v6(0x64FF9B0001 << 80 | (middle % 2**48) << 32 | int(v4))


def nat64_local_48(v4, suffix):
    """64:ff9b:1::/48 with the IPv4 address where RFC 6052 puts it for a /48 prefix (bits
    48-63 and 72-87; bits 64-71 are zero)."""
    high, low = int(v4) >> 16, int(v4) & 0xFFFF
    return v6(0x64FF9B0001 << 80 | high << 64 | low << 40 | suffix % 2**32)


EMBEDDINGS = [
    mapped,
    compatible,
    sixtofour,
    teredo_server,
    teredo_client,
    nat64,
    nat64_local_96,
    nat64_local_48,
]


def test_the_6to4_address_of_loopback_is_refused():
    assert ipaddress.IPv6Address("2002:7f00:1::").sixtofour == ipaddress.IPv4Address("127.0.0.1")
    assert not is_public("2002:7f00:1::")


@given(st.one_of(inside(SPECIAL_V4), inside(SPECIAL_V6)))
def test_every_address_of_a_special_range_is_refused(address):
    assert not is_public(str(address)), address


@given(
    st.sampled_from(EMBEDDINGS),
    non_global_v4,
    bits(0, 2**128 - 1),
    st.sampled_from(["", "%eth0"]),
)
def test_every_embedding_of_a_non_global_ipv4_address_is_refused(embed, v4, rest, scope):
    address = embed(v4, rest)
    assert not is_public(f"{address}{scope}"), (embed.__name__, v4, address)


@given(st.sampled_from(EMBEDDINGS), non_global_v4, bits(0, 2**128 - 1))
def test_an_embedding_reads_back_as_its_ipv4_address(embed, v4, rest):
    """The generators above write what ipaddress reads (they test the policy, not themselves)."""
    address = embed(v4, rest)
    if embed is mapped:
        assert address.ipv4_mapped == v4
    elif embed is sixtofour:
        assert address.sixtofour == v4
    elif embed is teredo_server:
        assert address.teredo[0] == v4
    elif embed is teredo_client:
        assert address.teredo[1] == v4
    elif embed in (compatible, nat64, nat64_local_96):
        assert ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) == v4
    else:
        assert embed is nat64_local_48
        assert ipaddress.IPv4Address(address.packed[6:8] + address.packed[9:11]) == v4


@given(st.one_of(global_v4, inside(GLOBAL_V6)))
def test_global_addresses_are_accepted(address):
    assert is_public(str(address)), address


@given(global_v4, bits(0, 2**80 - 1))
def test_6to4_and_mapped_addresses_of_global_ipv4_addresses_are_accepted(v4, low80):
    assert is_public(str(sixtofour(v4, low80)))
    assert is_public(str(mapped(v4, None)))


@given(st.sampled_from([compatible, nat64, teredo_server, teredo_client]), any_v4, bits(0, 2**96))
def test_forms_whose_prefix_is_not_global_are_refused_whatever_they_carry(embed, v4, rest):
    """IPv4-compatible (deprecated), NAT64 (a translator's, never a receiver's own address)
    and Teredo (IETF protocol assignments) are refused even around a global IPv4 address."""
    assert not is_public(str(embed(v4, rest)))


@pytest.mark.parametrize(
    "literal",
    [
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:c0a8:101::",  # 6to4 of 192.168.1.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:0:7f00:1::1",  # Teredo, server 127.0.0.1
        "2001:0:808:808:0:0:80ff:fffe",  # Teredo, client 127.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible 127.0.0.1
        "::ffff:127.0.0.1",
        "fec0::1",
    ],
)
def test_production_refuses_receivers_at_embedding_literals(literal):
    url = f"http://[{literal}]/hooks"
    with pytest.raises(UrlRefused, match="non-public"):
        check_destination(url, timeout=1)
    svc = make_service(app_env="production")
    with pytest.raises(ValidationError):
        subscribe(svc, ["appointment.created"], url=url)
    assert svc.hooks.docs == {}


def test_production_accepts_the_6to4_literal_of_a_global_address():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    svc = make_service(app_env="production")
    made = subscribe(svc, ["appointment.created"], url="http://[2002:808:808::1]/hooks")
    assert made["secret"].startswith("whsec_")
