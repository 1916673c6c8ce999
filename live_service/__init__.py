"""The live service: `GET /api/live/{hospital_id}/{date}` as a text/event-stream of the day's
availability and queue, and the waiting-room page `GET /display/{hospital_id}`.

An asyncio server (aiohttp), so thousands of idle streams cost no thread each. It reads the
Redis streams that the booking and schedule services append to (shared/events.py), one
reader per topic, and the states themselves from the booking service's public answers
(live_service/hub.py). Served by gunicorn with aiohttp's worker:

    gunicorn 'live_service:create_app()' --worker-class live_service.worker.LiveWorker

(aiohttp's worker, with gunicorn's `--backlog` kept: live_service/worker.py.)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.cluster import RedisCluster

from shared.access_log import configure_logging

from . import metrics
from .booking_client import BookingClient
from .clients import open_files_limit
from .hub import BLOCK_MS, Hub
from .settings import LiveSettings
from .streams import Streams
from .views import LIVE, Live, add_routes, answers, stamp_request_id

# The gateway bounds requests (URIs of 8,000 characters, headers of 1 MB); aiohttp's own
# limits are lower and would answer a request the gateway let through with a plain-text 400.
# A handler is cancelled when its client goes: a stream ends (and is no longer counted against
# its client's limit) at once, not at its next write.
HANDLER_ARGS = {
    "max_line_size": 8190,
    "max_field_size": 1048576,
    "max_headers": 32768,
    "handler_cancellation": True,
}

log = logging.getLogger(__name__)


def create_app(settings: LiveSettings | None = None) -> web.Application:
    """Build the live service app (one per gunicorn worker; clients are made at start-up, in
    the worker's event loop)."""
    settings = settings or LiveSettings.from_env()
    configure_logging()
    app = web.Application(middlewares=[answers], handler_args=HANDLER_ARGS)
    open_files = open_files_limit()
    live = app[LIVE] = Live.of(settings, open_files)
    metrics.STREAM_CAPACITY.set(live.limits.total)
    log.info(
        "live: at most %d streams in this process, %d per client (open files %d)",
        live.limits.total, live.limits.per_client, open_files,
    )  # fmt: skip
    app.cleanup_ctx.append(_connections)
    app.on_shutdown.append(_end_streams)
    app.on_response_prepare.append(stamp_request_id)
    add_routes(app)
    return app


def _redis(settings: LiveSettings, read_timeout: float) -> aioredis.Redis:
    kind = RedisCluster if settings.redis_cluster else aioredis.Redis
    return kind.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=read_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
    )


async def _connections(app: web.Application) -> AsyncIterator[None]:
    """This process's clients: Redis (one for short commands, one for XREAD BLOCK, whose
    replies take up to BLOCK_MS) and one HTTP session to the booking service."""
    live = app[LIVE]
    settings = live.settings
    live.redis = _redis(settings, settings.redis_timeout)
    blocking = _redis(settings, BLOCK_MS / 1000 + settings.redis_timeout + 1)
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(
            total=settings.fetch_timeout, connect=settings.upstream_connect_timeout
        ),
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=1.5),
    )
    live.hub = Hub(
        Streams(live.redis, blocking, cluster=settings.redis_cluster),
        BookingClient(session, settings.booking_service_url),
    )
    yield
    await session.close()
    await blocking.aclose()
    await live.redis.aclose()


async def _end_streams(app: web.Application) -> None:
    """On shutdown, before waiting for handlers: end every stream (they never end alone)."""
    hub = app[LIVE].hub
    if hub is not None:
        hub.close()
