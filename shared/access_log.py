"""Request IDs and the JSON access log: one line per request, on every service."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid

from flask import Flask, Response, g, request

from . import metrics

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access_log = logging.getLogger("slotbook.access")


def request_id(incoming: str | None) -> str:
    """The caller's X-Request-ID when it is safe to log and pass on, else a new one."""
    return incoming if incoming and _SAFE_ID.fullmatch(incoming) else uuid.uuid4().hex


def install_request_log(app: Flask, service: str) -> None:
    # `g` and `request` are context-local proxies: the hooks look each up once.
    header_key = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")

    @app.before_request
    def assign_request_id():
        ctx = g._get_current_object()
        # The raw environ value: a request ID is ASCII, so no header decoding is needed.
        ctx.request_id = request_id(request.environ.get(header_key))
        ctx.started = time.perf_counter()

    @app.after_request
    def stamp_request_id(response: Response):
        ctx = g._get_current_object()
        rid = ctx.get("request_id") or uuid.uuid4().hex
        response.headers[REQUEST_ID_HEADER] = rid
        started = ctx.get("started")
        if started is None:
            return response
        elapsed = time.perf_counter() - started
        req = request._get_current_object()
        rule = req.url_rule.rule if req.url_rule else None
        status = response.status_code
        metrics.observe_request(service, req.method, rule or metrics.UNMATCHED, status, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            principal = ctx.get("principal")
            access_log.info(
                json.dumps(
                    {
                        "request_id": rid,
                        "method": req.method,
                        "route": rule,
                        "path": req.path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "user_id": principal.user_id if principal else None,
                    },
                    separators=(",", ":"),
                )
            )
        return response


_logging_ready = False


def configure_logging() -> None:
    """JSON lines on stderr; one access line per request (no bodies, tokens or phones)."""
    global _logging_ready
    if _logging_ready:
        return
    _logging_ready = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.propagate = False
    access_log.setLevel(os.environ.get("ACCESS_LOG_LEVEL", "INFO").upper())
