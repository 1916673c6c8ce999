"""HTTP layer of the live service (aiohttp): the event stream, the waiting-room display and
the front desk's pages (and their script and style files), health, metrics and its OpenAPI
document. Every error is in the contract's shape."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from shared import metrics as shared_metrics
from shared.access_log import access_log, request_id
from shared.errors import error_body, http_reason
from shared.ids import ID_RULE, is_id
from shared.slots import parse_date

from . import metrics
from .booking_client import Answer, BookingUnavailable
from .clients import Limits, Proxies, parse_networks, streams_cap
from .hub import Backoff, Client, Hub, Refused
from .openapi import DOCUMENT
from .settings import LiveSettings
from .sse import HEARTBEAT, Event, retry_field
from .streams import Topic

log = logging.getLogger(__name__)

SERVICE = "live"
# The request's X-Request-ID (the caller's when it is safe, else a new one), set first.
REQUEST_ID = web.RequestKey("request_id", str)
STATIC = Path(__file__).resolve().parent / "static"
DISPLAY_PAGE = STATIC / "display.html"
DESK_PAGE = STATIC / "desk.html"
# The pages' own script and style files (no inline script or style, nothing from elsewhere):
# `/{page}/static/{name}`, only these names.
ASSETS = {
    "display": {
        "display.js": "text/javascript; charset=utf-8",
        "display.css": "text/css; charset=utf-8",
    },
    "desk": {
        "desk.js": "text/javascript; charset=utf-8",
        "desk.css": "text/css; charset=utf-8",
    },
}
# Only the page's own origin: its script and style files, its API calls and event stream.
# No inline script or style, no frames, no form posted anywhere (the forms are sent by script).
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # Proxies that buffer unless told not to (nginx) pass this stream as it comes.
    "X-Accel-Buffering": "no",
}


#: Retry-After of a client over its limit: one of its streams has to end first.
CLIENT_RETRY_AFTER = 10
#: Retry-After of a process that holds all it takes: drawn between these, to spread clients.
FULL_RETRY_AFTER = (5, 15)


@dataclass
class Live:
    """This process's live service: its settings, its streams, and what it connects at
    start."""

    settings: LiveSettings
    limits: Limits
    proxies: Proxies
    hub: Hub | None = None
    redis: aioredis.Redis | None = None

    @classmethod
    def of(cls, settings: LiveSettings, open_files: int) -> Live:
        """This process's service with `settings` (ValueError: LIVE_TRUSTED_PROXIES is not a
        list of addresses); its total of streams from the open-files limit when
        LIVE_MAX_CONNECTIONS is 0."""
        limits = Limits(
            settings.streams_per_client, streams_cap(settings.max_connections, open_files)
        )
        proxies = Proxies(parse_networks(settings.trusted_proxies), settings.proxy_hops)
        return cls(settings, limits, proxies)


LIVE = web.AppKey("live", Live)
#: The answer whose headers went (stamp_request_id), for the access line of a cancelled handler.
SENT = web.RequestKey("sent", web.StreamResponse)


class LiveError(Exception):
    """An answer in the error shape, raised by a handler before any byte is sent."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        errors: dict | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.errors = errors
        self.headers = headers or {}


def error_answer(
    status: int, reason: str, message: str, errors: dict | None = None, **extra
) -> web.Response:
    """A response in the contract's error shape."""
    return web.Response(
        body=orjson.dumps(error_body(status, reason, message, errors, **extra)),
        status=status,
        content_type="application/json",
    )


def json_answer(body: object, status: int = 200) -> web.Response:
    """A JSON document."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


# --------------------------------------------------------------------------- the stream


async def live_stream(request: web.Request) -> web.StreamResponse:
    """`GET /api/live/{hospital_id}/{day}[?practitioner_id=]`: the day's events."""
    live = request.app[LIVE]
    # In the booking service's order: the path's id (404), the query (400), the date (400).
    hospital = hospital_id(request)
    practitioner = practitioner_id(request)
    topic = Topic(hospital, day(request), practitioner)
    who = live.proxies.client(request.remote, request.headers.getall("X-Forwarded-For", ()))
    refused = live.limits.take(who)
    if refused is not None:
        metrics.STREAMS_REFUSED.labels(refused).inc()
        raise _too_many(refused, live)
    metrics.OPEN_STREAMS.inc()
    try:
        return await _serve(request, live, topic)
    finally:
        live.limits.give(who)
        metrics.OPEN_STREAMS.dec()


def _too_many(refused: str, live: Live) -> LiveError:
    """The 429 of a client over its limit, or of a process that holds all it takes."""
    if refused == "client":
        wait = CLIENT_RETRY_AFTER
        message = (
            f"This address has {live.limits.per_client} live streams open here already; "
            "close one first"
        )
    else:
        wait = random.randint(*FULL_RETRY_AFTER)  # spreads the clients' retries
        message = "This server holds all the live streams it can; try again later"
    return LiveError(429, "too_many_streams", message, headers={"Retry-After": str(wait)})


async def _serve(request: web.Request, live: Live, topic: Topic) -> web.StreamResponse:
    """The stream of a client within its limits. For a hospital (and doctor) this process
    knows, the headers go at once and the first events follow; for one it does not, the first
    state is read first (shared with every client joining the topic at that moment), so an
    unknown hospital or doctor is still the booking service's 404."""
    hub = live.hub
    assert hub is not None
    settings = live.settings
    client = Client(settings.client_buffer)
    last_event_id = request.headers.get("Last-Event-ID")
    response: web.StreamResponse | None = None
    if hub.knows(topic):
        response, alive = await _open(request, client, settings)
        if not alive:
            return response
        first = await _first_when_ready(hub, topic, client, last_event_id, request, response)
        if first is None:
            return response
    else:
        try:
            first = await hub.join(topic, client, last_event_id, request[REQUEST_ID])
        except Refused as refused:
            return _refused(refused.answer)
        except BookingUnavailable as exc:
            log.warning("live %s: cannot start: %s", topic, exc)
            raise LiveError(
                503, "service_unavailable", "The booking service is unavailable"
            ) from exc
    try:
        alive = True
        if response is None:
            response, alive = await _open(request, client, settings)
        if alive:
            await _stream(response, client, first, settings)
        return response
    finally:
        hub.leave(topic, client)


async def _open(
    request: web.Request, client: Client, settings: LiveSettings
) -> tuple[web.StreamResponse, bool]:
    """Send the stream's headers and its `retry:` field (so they pass every proxy at once);
    and whether the client is still there."""
    response = web.StreamResponse(headers=STREAM_HEADERS)
    _bound_send_buffer(request.transport, settings.send_buffer_bytes)
    try:
        await response.prepare(request)
        client.transport = request.transport
        await response.write(retry_field())
    except OSError:  # the client went away
        return response, False
    return response, True


async def _first_when_ready(
    hub: Hub,
    topic: Topic,
    client: Client,
    last_event_id: str | None,
    request: web.Request,
    response: web.StreamResponse,
) -> list[Event] | None:
    """The first events of a stream whose headers went: while the booking service cannot be
    read, a comment line after each try, and the next try with backoff (the client stays
    connected, as an open stream does). None when the stream is to end: the booking service
    refused the state (a doctor removed since: the client reconnects, and gets the 404), or
    the client went away."""
    backoff = Backoff()
    while True:
        try:
            return await hub.join(topic, client, last_event_id, request[REQUEST_ID])
        except Refused:
            log.info("live %s: refused after the headers went; ending the stream", topic)
            return None
        except BookingUnavailable as exc:
            log.warning("live %s: first state unavailable, retrying in %.1f s: %s", topic,
                        backoff.delay, exc)  # fmt: skip
        try:
            await response.write(HEARTBEAT)
        except OSError:
            return None
        await backoff.wait()


async def _stream(
    response: web.StreamResponse, client: Client, first: list[Event], settings: LiveSettings
) -> None:
    """Send the first events, then the client's queue as it fills, and a comment line after
    `heartbeat_seconds` without one; until the client goes, is dropped, or the process
    stops."""
    heartbeat = settings.heartbeat_seconds
    try:
        if first:
            await response.write(b"".join(item.wire for item in first))
        while not client.dropped:
            try:
                async with asyncio.timeout(heartbeat):
                    item = await client.queue.get()
            except TimeoutError:
                await response.write(HEARTBEAT)
                continue
            if item is None:  # shutdown: end the stream cleanly
                break
            await response.write(item.wire)
    except OSError:  # the client went away (or was dropped): nothing more to send
        pass


def _bound_send_buffer(transport: asyncio.BaseTransport | None, size: int) -> None:
    """Fix the kernel's send buffer of a stream's socket at `size` bytes (no growth), so a
    client that stops reading fills it, then its queue, soon (see LiveSettings)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if size <= 0 or sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    except OSError:  # a socket already closing: its stream ends at its first write
        log.debug("could not set the send buffer of a stream's socket")


def _refused(answer: Answer) -> web.Response:
    """The booking service's 4xx for the stream's first state, as it was (its error shape),
    with the same status."""
    body = answer.body
    if isinstance(body, dict) and {"code", "status", "error", "message"} <= body.keys():
        return json_answer(body, answer.status)
    return error_answer(answer.status, http_reason(answer.status), "The request was refused")


# --------------------------------------------------------------------------- input


def hospital_id(request: web.Request) -> str:
    """The path's hospital id; 404 hospital_not_found when it cannot be one."""
    value = request.match_info["hospital_id"]
    if not is_id(value):
        raise LiveError(404, "hospital_not_found", f"No hospital {value!r}")
    return value


def practitioner_id(request: web.Request) -> str | None:
    """The query's practitioner_id (once at most); 400 validation_error when it cannot be
    one."""
    values = request.query.getall("practitioner_id", [])
    if not values:
        return None
    if len(values) > 1 or not is_id(values[0]):
        rule = ID_RULE if len(values) == 1 else "must be given once"
        raise LiveError(
            400, "validation_error", "The request is not valid", {"practitioner_id": [rule]}
        )
    return values[0]


def day(request: web.Request) -> str:
    """The path's date; 400 invalid_date unless it is YYYY-MM-DD."""
    value = request.match_info["day"]
    if parse_date(value) is None:
        raise LiveError(400, "invalid_date", f"{value!r} is not a date YYYY-MM-DD")
    return value


# --------------------------------------------------------------------------- the rest


async def display(request: web.Request) -> web.StreamResponse:
    """`GET /display/{hospital_id}[?practitioner_id=]`: the waiting-room page."""
    hospital_id(request)
    practitioner_id(request)
    if not DISPLAY_PAGE.is_file():
        raise LiveError(404, "not_found", "The display page is not installed")
    return web.FileResponse(DISPLAY_PAGE, headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})


async def desk(request: web.Request) -> web.StreamResponse:
    """`GET /desk/{hospital_id}[?practitioner_id=]`: the front desk's page. Only for a
    hospital (and doctor) that exists: the booking service's queue answer says so, and its
    404 (`hospital_not_found`, `practitioner_not_found`) is answered as it is."""
    hospital = hospital_id(request)
    practitioner = practitioner_id(request)
    if not DESK_PAGE.is_file():
        raise LiveError(404, "not_found", "The front desk page is not installed")
    hub = request.app[LIVE].hub
    assert hub is not None
    # Any date names the same hospital and doctor; the queue answer is read for none of it.
    topic = Topic(hospital, datetime.now(UTC).date().isoformat(), practitioner)
    try:
        answer = await hub.booking.queue(topic, request[REQUEST_ID])
    except BookingUnavailable as exc:
        log.warning("desk %s: cannot check the hospital: %s", hospital, exc)
        raise LiveError(503, "service_unavailable", "The booking service is unavailable") from exc
    if answer.status != 200:
        return _refused(answer)
    return web.FileResponse(DESK_PAGE, headers={**PAGE_HEADERS, "Cache-Control": "no-store"})


def assets(page: str):
    """The handler of `GET /{page}/static/{name}`: one of the page's script or style files
    (with ETag and Last-Modified: a browser asks again each time, 304 while unchanged)."""
    files = ASSETS[page]

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        content_type = files.get(name)
        if content_type is None or not (STATIC / name).is_file():
            raise LiveError(404, "not_found", "The requested URL was not found on the server.")
        headers = {
            "Content-Type": content_type,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        return web.FileResponse(STATIC / name, headers=headers)

    return asset


async def healthz(request: web.Request) -> web.Response:
    """The process answers."""
    return json_answer({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Redis answers (the booking service is the gateway's /readyz's to check)."""
    live = request.app[LIVE]
    try:
        assert live.redis is not None
        async with asyncio.timeout(live.settings.redis_timeout + 1):
            await live.redis.ping()
        checks = {"redis": "ok"}
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        checks = {"redis": f"down: {type(exc).__name__}"}
        return error_answer(503, "not_ready", "Not ready: redis unavailable", checks=checks)
    return json_answer({"status": "ok", "checks": checks})


async def prometheus_metrics(request: web.Request) -> web.Response:
    """Prometheus text: every worker's values."""
    return web.Response(
        body=shared_metrics.render(), headers={"Content-Type": shared_metrics.CONTENT_TYPE}
    )


async def openapi(request: web.Request) -> web.Response:
    """This service's OpenAPI document."""
    return json_answer(DOCUMENT)


def add_routes(app: web.Application) -> None:
    """The service's routes. A stream has no HEAD (it would never end)."""
    app.router.add_get("/api/live/{hospital_id}/{day}", live_stream, allow_head=False)
    app.router.add_get("/display/{hospital_id}", display)
    app.router.add_get("/desk/{hospital_id}", desk)
    for page in ASSETS:
        app.router.add_get(f"/{page}/static/{{name}}", assets(page))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus_metrics)
    app.router.add_get("/openapi.json", openapi)


# --------------------------------------------------------------------------- every request


@web.middleware
async def answers(request: web.Request, handler) -> web.StreamResponse:
    """Every failure in the error shape (never a 5xx page or a trace), and one JSON access
    line per request, as the other services write them."""
    request[REQUEST_ID] = request_id(request.headers.get("X-Request-ID"))
    started = time.perf_counter()
    try:
        response = await handler(request)
    except LiveError as exc:
        response = error_answer(exc.status, exc.reason, exc.message, exc.errors)
        response.headers.update(exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_answer(exc.status, http_reason(exc.status), exc.reason)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_answer(500, "internal_error", "An unexpected error occurred")
    except asyncio.CancelledError:
        # The client went (aiohttp cancels the handler): a stream that ended, or a request
        # given up before its answer (499, as the gateway logs it).
        sent = request.get(SENT)
        _log(request, sent.status if sent is not None else 499, time.perf_counter() - started)
        raise
    _log(request, response.status, time.perf_counter() - started)
    return response


async def stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer carries the request's X-Request-ID (set before its headers go)."""
    rid = request.get(REQUEST_ID) or request_id(None)
    response.headers["X-Request-ID"] = rid
    request[SENT] = response


def _log(request: web.Request, status: int, seconds: float) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else None
    shared_metrics.observe_request(
        SERVICE, request.method, route or shared_metrics.UNMATCHED, status, seconds
    )
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            json.dumps(
                {
                    "request_id": request.get(REQUEST_ID),
                    "method": request.method,
                    "route": route,
                    "path": request.path,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "user_id": None,
                },
                separators=(",", ":"),
            )
        )
