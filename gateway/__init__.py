"""The gateway: routes public paths to the two services. No business logic."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from shared.config import Config, env_float, env_int
from shared.errors import NotFound
from shared.web import REQUEST_ID_HEADER, add_readiness_check, create_base_app, json_response

from .openapi import docs_page, merged_openapi
from .proxy import Proxy, strip_hop_by_hop
from .routes import route, service_urls

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_app(config: Config | None = None) -> Flask:
    """Build the gateway app (one per gunicorn worker)."""
    app, _ = create_base_app(__name__, "Gateway", config, with_api=False)
    cfg: Config = app.config["SLOTBOOK"]
    urls = service_urls(cfg)
    proxy = Proxy(
        urls,
        (cfg.upstream_connect_timeout, cfg.upstream_read_timeout),
        breaker_threshold=env_int("BREAKER_THRESHOLD", 5),
        breaker_cooldown=env_float("BREAKER_COOLDOWN_SECONDS", 5.0),
    )
    app.extensions["gateway.proxy"] = proxy
    for name, base in urls.items():
        add_readiness_check(app, name, _health_probe(proxy, base))

    @app.route("/api/<path:_rest>", methods=METHODS)
    def forward(_rest):
        service = route(request.path)
        if service is None:
            raise NotFound(f"No route for {request.path}")
        if request.method == "OPTIONS" and _cors_origin(cfg):
            return Response(status=204)
        headers = strip_hop_by_hop(request.headers)
        headers[REQUEST_ID_HEADER] = g.request_id
        forwarded = request.headers.get("X-Forwarded-For")
        client = request.remote_addr or ""
        headers["X-Forwarded-For"] = f"{forwarded}, {client}" if forwarded else client
        path_qs = request.full_path if request.query_string else request.path
        body = request.get_data() if request.method not in ("GET", "HEAD") else None
        upstream = proxy.forward(service, request.method, path_qs, headers, body)
        resp = Response(upstream.content, status=upstream.status_code)
        for key, value in strip_hop_by_hop(upstream.headers).items():
            if key.lower() != REQUEST_ID_HEADER.lower():
                resp.headers[key] = value
        return resp

    openapi_cache: dict = {}

    @app.get("/openapi.json")
    def openapi():
        cached = openapi_cache.get("doc")
        if cached is None or time.monotonic() - cached[0] > 30:
            cached = (time.monotonic(), merged_openapi(proxy))
            openapi_cache["doc"] = cached
        return json_response(cached[1])

    @app.get("/docs")
    def docs():
        return Response(docs_page(), mimetype="text/html")

    @app.after_request
    def cors(resp: Response):
        origin = _cors_origin(cfg)
        if origin:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Vary"] = "Origin"
            resp.headers["Access-Control-Expose-Headers"] = "ETag, X-Request-ID, Retry-After"
            if request.method == "OPTIONS":
                resp.headers["Access-Control-Allow-Methods"] = ", ".join(METHODS)
                resp.headers["Access-Control-Allow-Headers"] = (
                    "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, "
                    "X-Request-ID"
                )
                resp.headers["Access-Control-Max-Age"] = "600"
        return resp

    return app


def _cors_origin(cfg: Config) -> str | None:
    origin = request.headers.get("Origin")
    if origin and (origin in cfg.cors_origins or "*" in cfg.cors_origins):
        return origin
    return None


def _health_probe(proxy: Proxy, base: str):
    def probe():
        proxy.get(base + "/healthz", timeout=1.0)

    return probe
