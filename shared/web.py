"""The base app every service builds on: settings, the error shape, health and metrics, the
blueprints and answers of flask-smorest, and (from their modules) request parsing and logs."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from flask import Flask, Response
from flask_smorest import Api, Blueprint
from werkzeug.exceptions import HTTPException

from . import metrics
from .access_log import configure_logging, install_request_log
from .clients import init_clients, redis_ping
from .config import Config
from .errors import DomainError, error_response, register_error_handlers
from .ids import register_converters
from .request_parsing import JsonRequest, StrictJSONProvider, StrictParser
from .schemas import ApiErrorSchema


class SlotbookFlask(Flask):
    """Flask, with `ensure_sync` answered once per function: every view and hook here is a
    plain function, and Flask's own check (inspect.iscoroutinefunction, run for each of the
    ~11 hooks and views of every request) cost about 20 µs of CPU per request. Flask's
    documentation names ensure_sync as the method to override; an async function still runs
    through Flask's async_to_sync."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Whether a function (a bound method: its function) is plain: a bounded set, since
        # MethodView binds a new method every request.
        self._plain: dict[object, bool] = {}

    def ensure_sync(self, func: Callable) -> Callable:
        key = getattr(func, "__func__", func)
        plain = self._plain.get(key)
        if plain is None:
            plain = super().ensure_sync(func) is func
            if len(self._plain) < 4096:
                self._plain[key] = plain
        return func if plain else super().ensure_sync(func)


class SlotbookApi(Api):
    """flask-smorest's Api, documenting its default and 422 errors in our one error shape."""

    ERROR_SCHEMA = ApiErrorSchema


class SlotbookBlueprint(Blueprint):
    """flask-smorest's Blueprint, parsing JSON bodies with StrictParser."""

    ARGUMENTS_PARSER = StrictParser()

    def error_answers(self, *statuses: int) -> Callable:
        """Document the errors an operation answers, each in the one error shape:
        flask-smorest's `alt_response` for each status."""

        def decorate(func: Callable) -> Callable:
            for status in reversed(statuses):
                func = self.alt_response(status, schema=ApiErrorSchema)(func)
            return func

        return decorate


def no_store(response: Response) -> Response:
    """Mark an answer that carries a token or personal data: no cache may keep it."""
    response.headers["Cache-Control"] = "no-store"
    return response


def json_answer(body: object, status: int = 200, headers: dict | None = None) -> Response:
    """An answer as compact UTF-8 JSON, keys in the document's order (orjson); `bytes` are
    such JSON written already (shared/answers.py's cached answers)."""
    raw = body if type(body) is bytes else orjson.dumps(body)
    resp = Response(raw, status=status, mimetype="application/json")
    if headers:
        resp.headers.update(headers)
    return resp


def create_base_app(
    import_name: str, title: str, config: Config | None = None
) -> tuple[Flask, Api]:
    """A Flask app with the shared settings, error shape, request IDs, logs and /healthz."""
    cfg = config or Config.from_env()
    cfg.check_production_secrets()
    app = SlotbookFlask(import_name)
    app.request_class = JsonRequest
    app.json_provider_class = StrictJSONProvider
    app.json = StrictJSONProvider(app)
    # One spelling per URL: `/a//b` is not `/a/b` (werkzeug would merge the slashes).
    app.url_map.merge_slashes = False
    app.config["SLOTBOOK"] = cfg
    app.config.update(
        API_TITLE=title,
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=cfg.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.json.compact = True
    api = SlotbookApi(app, spec_kwargs={"servers": [{"url": "/"}]})
    register_converters(app, api)
    register_error_handlers(app)
    service = service_name(import_name)
    _count_dependency_errors(app, service)
    install_request_log(app, service)
    configure_logging()
    app.extensions["slotbook.readiness"] = {}

    @app.get("/healthz")
    def healthz():
        return json_answer({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        checks = app.extensions["slotbook.readiness"]
        results = {name: _probe(check) for name, check in checks.items()}
        down = sorted(name for name, ok in results.items() if ok != "ok")
        if down:
            return error_response(
                503,
                "not_ready",
                "Not ready: " + ", ".join(down) + " unavailable",
                checks=results,
            )
        return json_answer({"status": "ok", "checks": results})

    @app.get("/metrics")
    def prometheus_metrics():
        return Response(metrics.render(), mimetype=None, content_type=metrics.CONTENT_TYPE)

    return app, api


def service_name(import_name: str) -> str:
    """The `service` label of an app: schedule, booking or gateway."""
    return import_name.split(".")[0].removesuffix("_service")


def connect(app: Flask, bootstrap: Callable, ensure_indexes: Callable) -> object:
    """Build a service's context over this process's own MongoDB and Redis clients: clients
    made after gunicorn forked, the indexes ensured (MongoDB may come up later: /readyz says
    so), both databases probed by /readyz. `bootstrap(config, db, redis)` builds the context."""
    init_clients(app)
    cfg: Config = app.config["SLOTBOOK"]
    db, client = app.extensions["slotbook.db"], app.extensions["slotbook.redis"]
    try:
        ensure_indexes(db)
    except Exception:  # noqa: BLE001 - any failure here is reported by /readyz
        app.logger.warning("could not ensure indexes at start")
    mongo = app.extensions["slotbook.mongo"]
    add_readiness_check(app, "mongodb", lambda: mongo.admin.command("ping"))
    add_readiness_check(app, "redis", lambda: redis_ping(client))
    return bootstrap(cfg, db, client)


def add_readiness_check(app: Flask, name: str, check: Callable[[], object]) -> None:
    """Register a dependency that /readyz probes (a callable that raises when it is down)."""
    app.extensions["slotbook.readiness"][name] = check


def _probe(check: Callable[[], object]) -> str:
    try:
        check()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return f"down: {type(exc).__name__}"


def _count_dependency_errors(app: Flask, service: str) -> None:
    """Wrap every exception handler: a failure (5xx) caused by Redis or MongoDB is counted."""
    handlers = app.error_handler_spec[None][None]
    for cls, inner in list(handlers.items()):

        def counting(exc, _inner=inner):
            if _status(exc) >= 500 and (dependency := metrics.dependency_of(exc)) is not None:
                metrics.count_dependency_error(service, dependency)
            return _inner(exc)

        app.register_error_handler(cls, counting)


def _status(exc: BaseException) -> int:
    # Only failures count: a 409 raised from a DuplicateKeyError is the database working.
    if isinstance(exc, DomainError):
        return exc.status
    if isinstance(exc, HTTPException):
        return exc.code or 500
    return 500
