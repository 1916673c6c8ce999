"""The live service's settings, from the environment (README, "Configuration")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from shared.config import Config, read_settings, setting


@dataclass(frozen=True)
class LiveSettings:
    """What the live service reads from the environment: the fields without a variable of
    their own are Config's (same name), read as the other services read them."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    redis_timeout: float = 1.0
    booking_service_url: str = "http://127.0.0.1:8002"
    upstream_connect_timeout: float = 1.0
    # Below the gateway's UPSTREAM_READ_TIMEOUT (5 s): a stream that cannot start answers its
    # own 503 before the gateway gives up on it.
    fetch_timeout: float = setting("LIVE_FETCH_TIMEOUT_SECONDS", 3.0)
    heartbeat_seconds: float = setting("LIVE_HEARTBEAT_SECONDS", 15.0)
    # Two at least: one batch of changes makes up to two events.
    client_buffer: int = setting("LIVE_CLIENT_BUFFER", 64, at_least=2)
    # The kernel's send buffer of a stream's socket (0: the kernel's own, which grows to
    # megabytes for a peer that stops reading): what a stalled client can hold in the
    # kernel before its queue, then its connection, is dropped.
    send_buffer_bytes: int = setting("LIVE_SEND_BUFFER_BYTES", 65536)
    # Streams per worker process; 0: what its open-files limit leaves room for (clients.py,
    # streams_cap). Over it, or over streams_per_client for one client: 429 too_many_streams.
    # Both are counted per process: with N processes a client may hold N x streams_per_client.
    max_connections: int = setting("LIVE_MAX_CONNECTIONS", 0)
    streams_per_client: int = setting("LIVE_STREAMS_PER_CLIENT", 32, at_least=1)
    # The peers whose X-Forwarded-For names the client (the gateway): addresses or networks,
    # separated by spaces or commas.
    trusted_proxies: str = setting("LIVE_TRUSTED_PROXIES", "127.0.0.0/8 ::1/128")
    # X-Forwarded-For entries (from the right) that are proxies: 1, the gateway's own entry
    # names the client (as the booking service's ProxyFix reads it); 2 with a load balancer
    # in front of the gateway. A client on the gateway's own machine (a loopback address,
    # which is also a trusted proxy's) can then not name another address.
    proxy_hops: int = setting("LIVE_PROXY_HOPS", 1, at_least=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LiveSettings:
        """The settings of this process: those it shares with the other services read as they
        read them (shared.config), its own from the LIVE_* variables."""
        shared = Config.from_env(environ)
        common = {f.name: getattr(shared, f.name) for f in fields(cls) if "env" not in f.metadata}
        return cls(**common, **read_settings(cls, environ))
