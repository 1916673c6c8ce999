"""The live service's settings, from the environment (README, "Configuration")."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Config, env_float, env_int


@dataclass(frozen=True)
class LiveSettings:
    """What the live service reads from the environment."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    redis_timeout: float = 1.0
    booking_service_url: str = "http://127.0.0.1:8002"
    upstream_connect_timeout: float = 1.0
    # Below the gateway's UPSTREAM_READ_TIMEOUT (5 s): a stream that cannot start answers its
    # own 503 before the gateway gives up on it.
    fetch_timeout: float = 3.0
    heartbeat_seconds: float = 15.0
    client_buffer: int = 64
    # The kernel's send buffer of a stream's socket (0: the kernel's own, which grows to
    # megabytes for a peer that stops reading): what a stalled client can hold in the
    # kernel before its queue, then its connection, is dropped.
    send_buffer_bytes: int = 65536
    max_connections: int = 10000

    @classmethod
    def from_env(cls) -> LiveSettings:
        """The settings of this process: those it shares with the other services read as they
        read them (shared.config), its own from the LIVE_* variables."""
        shared = Config.from_env()
        return cls(
            redis_url=shared.redis_url,
            redis_cluster=shared.redis_cluster,
            redis_timeout=shared.redis_timeout,
            booking_service_url=shared.booking_service_url,
            upstream_connect_timeout=shared.upstream_connect_timeout,
            fetch_timeout=env_float("LIVE_FETCH_TIMEOUT_SECONDS", cls.fetch_timeout),
            heartbeat_seconds=env_float("LIVE_HEARTBEAT_SECONDS", cls.heartbeat_seconds),
            # Two at least: one batch of changes makes up to two events.
            client_buffer=max(2, env_int("LIVE_CLIENT_BUFFER", cls.client_buffer)),
            send_buffer_bytes=env_int("LIVE_SEND_BUFFER_BYTES", cls.send_buffer_bytes),
            max_connections=env_int("LIVE_MAX_CONNECTIONS", cls.max_connections),
        )
