"""The gateway: routes public paths to the two services. No business logic.

An aiohttp application, served by gunicorn with aiohttp's worker class
(`gunicorn 'gateway:create_app()' --worker-class aiohttp.GunicornWebWorker`): forwarding is
waiting, and one event loop per worker waits for many requests at far less CPU than threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web
from multidict import CIMultiDict

from shared import metrics
from shared.access_log import REQUEST_ID_HEADER, access_log, configure_logging, request_id
from shared.config import Config, env_float, env_int
from shared.errors import DomainError, NotFound, error_body, http_reason

from .openapi import docs_page, merged_openapi
from .proxy import RESPONSE_HOP_BY_HOP, Proxy, strip_hop_by_hop
from .routes import route, service_urls

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: The metrics/access-log `route` of every forwarded request (the label it always had).
FORWARD_ROUTE = "/api/<path:_rest>"
SERVICE = "gateway"
OPENAPI_CACHE_SECONDS = 30.0
PROBE_TIMEOUT_SECONDS = 1.0
CORS_ALLOW_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, X-Request-ID"
)

CONFIG = web.AppKey("config", Config)
PROXY = web.AppKey("proxy", Proxy)
REQUEST_ID = web.RequestKey("request_id", str)
log = logging.getLogger(__name__)


def create_app(config: Config | None = None) -> web.Application:
    """Build the gateway app (one per gunicorn worker, started on that worker's loop)."""
    cfg = config or Config.from_env()
    cfg.check_production_secrets()
    configure_logging()
    proxy = Proxy(
        service_urls(cfg),
        (cfg.upstream_connect_timeout, cfg.upstream_read_timeout),
        breaker_threshold=env_int("BREAKER_THRESHOLD", 5),
        breaker_cooldown=env_float("BREAKER_COOLDOWN_SECONDS", 5.0),
    )
    app = web.Application(client_max_size=cfg.max_body_bytes, middlewares=[_edge])
    app[CONFIG] = cfg
    app[PROXY] = proxy
    app.on_startup.append(lambda _app: proxy.start())
    app.on_cleanup.append(lambda _app: proxy.close())

    openapi_cache: dict[str, tuple[float, bytes]] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        service = route(request.path)
        if service is None:
            raise NotFound(f"No route for {request.path}")
        if request.method not in METHODS:
            return _error(405, "The method is not allowed for the requested URL.", _ALLOW)
        if request.method == "OPTIONS" and _cors_origin(cfg, request):
            return web.Response(status=204)
        headers = strip_hop_by_hop(request.headers)
        headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
        forwarded = request.headers.get("X-Forwarded-For")
        client = request.remote or ""
        headers["X-Forwarded-For"] = f"{forwarded}, {client}" if forwarded else client
        body = await request.read() if request.method not in ("GET", "HEAD") else None
        upstream = await proxy.forward(service, request.method, request.raw_path, headers, body)
        out = strip_hop_by_hop(upstream.headers, RESPONSE_HOP_BY_HOP)
        out.popall(REQUEST_ID_HEADER, None)
        return web.Response(body=upstream.content, status=upstream.status_code, headers=out)

    async def healthz(_request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        names = list(proxy.urls)
        outcomes = await asyncio.gather(
            *(proxy.probe(proxy.urls[n] + "/healthz", PROBE_TIMEOUT_SECONDS) for n in names),
            return_exceptions=True,
        )
        results = {
            name: "ok" if outcome is None else f"down: {type(outcome).__name__}"
            for name, outcome in zip(names, outcomes, strict=True)
        }
        down = sorted(name for name, state in results.items() if state != "ok")
        if down:
            message = "Not ready: " + ", ".join(down) + " unavailable"
            return _json(error_body(503, "not_ready", message, None, checks=results), 503)
        return _json({"status": "ok", "checks": results})

    async def prometheus_metrics(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def openapi(_request: web.Request) -> web.Response:
        cached = openapi_cache.get("doc")
        if cached is None or time.monotonic() - cached[0] > OPENAPI_CACHE_SECONDS:
            body = json.dumps(await merged_openapi(proxy), separators=(",", ":")).encode()
            cached = openapi_cache["doc"] = (time.monotonic(), body)
        return web.Response(body=cached[1], content_type="application/json")

    async def docs(_request: web.Request) -> web.Response:
        return web.Response(text=docs_page(), content_type="text/html")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus_metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
    app.router.add_route("*", "/api/{rest:.*}", forward)
    return app


_ALLOW = {"Allow": ", ".join(METHODS)}


@web.middleware
async def _edge(request: web.Request, handler) -> web.StreamResponse:
    """Request ID, the one error shape, CORS, metrics and the access log, for every answer."""
    started = time.perf_counter()
    rid = request[REQUEST_ID] = request_id(request.headers.get(REQUEST_ID_HEADER))
    try:
        resp = await handler(request)
    except DomainError as exc:
        resp = _error(exc.status, exc.message, exc.headers, exc.reason, exc.errors, **exc.extra)
    except web.HTTPException as exc:  # aiohttp's own: unknown route, 405, body too large
        resp = _http_error(exc)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        resp = _error(500, "An unexpected error occurred")
    resp.headers[REQUEST_ID_HEADER] = rid
    cfg = request.app[CONFIG]
    if cfg.cors_origins:
        _add_cors(cfg, request, resp)
    elapsed = time.perf_counter() - started
    resource = request.match_info.route.resource
    rule = None
    if resource is not None:
        rule = FORWARD_ROUTE if resource.canonical == "/api/{rest}" else resource.canonical
    metrics.observe_request(
        SERVICE, request.method, rule or metrics.UNMATCHED, resp.status, elapsed
    )
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            json.dumps(
                {
                    "request_id": rid,
                    "method": request.method,
                    "route": rule,
                    "path": request.path,
                    "status": resp.status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "user_id": None,  # the gateway does not read tokens; the services log it
                },
                separators=(",", ":"),
            )
        )
    return resp


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
    )


def _error(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    reason: str | None = None,
    errors: dict | None = None,
    /,
    **extra,
) -> web.Response:
    """An answer in the contract's error shape."""
    resp = _json(
        error_body(status, reason or http_reason(status), message, errors, **extra), status
    )
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _http_error(exc: web.HTTPException) -> web.Response:
    status = exc.status
    if status == 413:
        return _error(413, "The request body is too large")
    headers = {"Allow": exc.headers["Allow"]} if status == 405 and "Allow" in exc.headers else None
    if status == 404:
        message = "The requested URL was not found on the server."
    else:
        message = exc.reason
    return _error(status, message, headers)


def _cors_origin(cfg: Config, request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin and (origin in cfg.cors_origins or "*" in cfg.cors_origins):
        return origin
    return None


def _add_cors(cfg: Config, request: web.Request, resp: web.StreamResponse) -> None:
    origin = _cors_origin(cfg, request)
    if not origin:
        return
    headers: CIMultiDict[str] = resp.headers
    headers["Access-Control-Allow-Origin"] = origin
    headers["Vary"] = "Origin"
    headers["Access-Control-Expose-Headers"] = "ETag, X-Request-ID, Retry-After"
    if request.method == "OPTIONS":
        headers["Access-Control-Allow-Methods"] = ", ".join(METHODS)
        headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        headers["Access-Control-Max-Age"] = "600"
