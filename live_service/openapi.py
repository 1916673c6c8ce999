"""The live service's OpenAPI document, written by hand (there is no flask-smorest here).

Served at the service's own /openapi.json. The gateway's merged document leaves these paths
out (README, "Live events"): it is fuzzed through the gateway, and a stream never ends.
"""

from __future__ import annotations

from shared.ids import ID_PATTERN

_ERROR = {
    "type": "object",
    "required": ["code", "status", "error", "message"],
    "properties": {
        "code": {"type": "integer"},
        "status": {"type": "string"},
        "error": {"type": "string"},
        "message": {"type": "string"},
        "errors": {"type": "object"},
    },
}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_HOSPITAL = {
    "name": "hospital_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"},
}
_PRACTITIONER = {
    "name": "practitioner_id",
    "in": "query",
    "required": False,
    "description": "a doctor's day instead of the hospital's own",
    "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"},
}

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "Live service", "version": "1"},
    "servers": [{"url": "/"}],
    "tags": [{"name": "live", "description": "Day of the visit: live counts and queue"}],
    "paths": {
        "/api/live/{hospital_id}/{day}": {
            "get": {
                "tags": ["live"],
                "summary": "A day's availability and queue as they change (text/event-stream)",
                "description": (
                    "Starts with `retry:` (the reconnection delay, 1000-3000 ms, drawn per "
                    'stream); then one `resync` event (`{"availability": ..., "queue": ...}`), '
                    "or, with a `Last-Event-ID` still in the replay buffer, one event per kind "
                    "that changed since (the current state, the id of the last change); then "
                    "`availability` and `queue` events, and a `: keep-alive` comment line at "
                    "least every 15 s. Every event has an `id:` (a Redis stream entry id). "
                    "Streams are limited per client address (`LIVE_STREAMS_PER_CLIENT`) and "
                    "per process: one more is `429 too_many_streams` with `Retry-After`."
                ),
                "parameters": [
                    _HOSPITAL,
                    {
                        "name": "day",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "date"},
                    },
                    _PRACTITIONER,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,20}-[0-9]{1,20}$"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _error("invalid_date, or validation_error (practitioner_id)"),
                    "404": _error("hospital_not_found, practitioner_not_found"),
                    "429": {
                        **_error(
                            "too_many_streams: this client address holds its limit of streams, "
                            "or this process all it takes"
                        ),
                        "headers": {
                            "Retry-After": {
                                "description": "seconds",
                                "schema": {"type": "integer"},
                            }
                        },
                    },
                    "503": _error("the booking service is down (for a hospital not read lately)"),
                },
            }
        },
        "/display/{hospital_id}": {
            "get": {
                "tags": ["live"],
                "summary": "The waiting-room screen of a hospital (or of a doctor)",
                "parameters": [_HOSPITAL, _PRACTITIONER],
                "responses": {
                    "200": {
                        "description": "The page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "400": _error("validation_error (practitioner_id)"),
                    "404": _error("hospital_not_found, or no page"),
                },
            }
        },
        "/desk/{hospital_id}": {
            "get": {
                "tags": ["live"],
                "summary": "The front desk's page of a hospital (or of a doctor's queue)",
                "description": (
                    "Sign-in for staff and admin, the day's appointments by slot and serial, "
                    "the visit steps, walk-in booking, live from the day's stream. "
                    "`Cache-Control: no-store`; a Content-Security-Policy of the page's own "
                    "origin only."
                ),
                "parameters": [_HOSPITAL, _PRACTITIONER],
                "responses": {
                    "200": {
                        "description": "The page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "400": _error("validation_error (practitioner_id)"),
                    "404": _error("hospital_not_found, practitioner_not_found, or no page"),
                    "503": _error("the booking service is down"),
                },
            }
        },
    },
    "components": {"schemas": {"Error": _ERROR}},
}
