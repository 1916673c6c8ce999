"""Who a stream's client is, and how many streams each client and this process hold.

The client address is the one a trusted proxy vouches for: a peer in the trusted proxies
(`LIVE_TRUSTED_PROXIES`: the gateway) passes the client's address in `X-Forwarded-For`, the
gateway's own peer last (Caddy extends the header only for its own trusted proxies, and
replaces it for anyone else). The address is the right-most entry that is not a trusted proxy,
looking at most `hops` entries from the right (LIVE_PROXY_HOPS, 1: the gateway's own entry,
so a client on the gateway's machine, whose loopback address is also a proxy's, cannot name
another one); when every entry looked at is one, the last of them. An untrusted peer's header
is ignored: the client is its peer address. So a client cannot escape its limit by sending
the header itself.

An IPv6 client is its /64 (one host is commonly given a whole /64); an IPv4-mapped address is
its IPv4 address. The limits are counted in this process only (see LiveSettings): exact here,
and what a process that dies held goes with it.
"""

from __future__ import annotations

import ipaddress
import resource
from collections.abc import Iterable
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: A peer that is no IP address (a Unix socket) is this client.
UNKNOWN = "unknown"
#: Most X-Forwarded-For entries looked at, from the right: a chain of proxies is short.
MOST_HOPS = 32


def parse_networks(text: str) -> tuple[Network, ...]:
    """`LIVE_TRUSTED_PROXIES`: addresses or CIDR networks, separated by spaces or commas.
    Raises ValueError for anything else (a startup error)."""
    networks = []
    for word in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError as exc:
            message = f"LIVE_TRUSTED_PROXIES: {word!r} is not an address or a network"
            raise ValueError(message) from exc
    return tuple(networks)


def _address(text: str) -> Address | None:
    """One address as a peer or an X-Forwarded-For entry writes it; None if it is none."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6] or [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    if not text or len(text) > 64:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(address: Address) -> str:
    """The key a client's streams are counted under: an IPv4 address, or an IPv6 /64."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


@dataclass(frozen=True)
class Proxies:
    """The trusted proxies, and the client address of a request."""

    networks: tuple[Network, ...]
    #: X-Forwarded-For entries, from the right, that may name a proxy (LIVE_PROXY_HOPS): the
    #: client is at most this far from the right, whatever the entries say.
    hops: int = MOST_HOPS

    def trusts(self, address: Address) -> bool:
        """Whether `address` is a trusted proxy."""
        return any(address in network for network in self.networks)

    def client(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        """The client's key, from the connection's peer and its X-Forwarded-For header lines
        (in order; several lines are one list)."""
        address = _address(peer or "")
        if address is None:
            return UNKNOWN
        if not self.trusts(address):
            return client_key(address)
        entries = ",".join(forwarded_for).rsplit(",", MOST_HOPS)
        for seen, entry in enumerate(reversed(entries[-MOST_HOPS:]), start=1):
            hop = _address(entry)
            if hop is None:  # not an address: the proxy that passed it on is the client
                break
            address = hop
            if seen >= self.hops or not self.trusts(hop):
                break
        return client_key(address)


def open_files_limit() -> int:
    """This process's open-files limit (its soft RLIMIT_NOFILE)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


#: With LIVE_MAX_CONNECTIONS unset (0): streams per process at most...
MOST_STREAMS = 10000


def streams_cap(setting: int, open_files: int) -> int:
    """The most streams this process holds: `setting`, or with 0, what the open-files limit
    leaves room for when the gateway shares it (`make run`): two files per stream in the
    gateway, and a tenth of the limit for the API and everything else; at most MOST_STREAMS."""
    if setting > 0:
        return setting
    return max(1, min(MOST_STREAMS, (open_files - open_files // 10) // 2))


@dataclass
class Limits:
    """The streams open in this process, per client and in all."""

    per_client: int
    total: int
    open: int = 0
    by_client: dict[str, int] = field(default_factory=dict)

    def take(self, client: str) -> str | None:
        """Count one more stream of `client`; None, or why it is refused (`client`: it holds
        `per_client` streams already; `total`: this process holds `total`)."""
        held = self.by_client.get(client, 0)
        if held >= self.per_client:
            return "client"
        if self.open >= self.total:
            return "total"
        self.by_client[client] = held + 1
        self.open += 1
        return None

    def give(self, client: str) -> None:
        """A stream of `client` ended."""
        held = self.by_client.get(client, 0) - 1
        if held > 0:
            self.by_client[client] = held
        else:
            self.by_client.pop(client, None)
        self.open = max(0, self.open - 1)
