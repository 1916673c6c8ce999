"""How every service reads a request: bodies bounded in size and parsed as strict JSON.

Flask's own `request.get_json()` and webargs (flask-smorest's arguments) both parse through
shared/jsonbody.py, so one configuration (strict UTF-8, bounded nesting, no lone surrogates)
holds for every body, and a body over MAX_BODY_BYTES is 413 whether it declared its length
or came chunked.
"""

from __future__ import annotations

import orjson
from flask import Request, Response, request
from flask.json.provider import DefaultJSONProvider
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from . import jsonbody
from .errors import ValidationError
from .ids import ID_PATTERN, ID_RULE, is_id


class _MaxBodyStream(LimitedStream):
    """A body without Content-Length (chunked), read up to MAX_BODY_BYTES.

    werkzeug's readall() stops at the limit without looking further, so a longer streamed
    body would silently become its first MAX_BODY_BYTES bytes (then malformed JSON, or a
    truncated body forwarded by the gateway). One more byte after the limit means 413.
    """

    def __init__(self, stream, limit: int) -> None:
        super().__init__(stream, limit, is_max=True)
        self._raw = stream

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted and self._raw.read(1):
            raise RequestEntityTooLarge()
        return data


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON: request bodies read through shared.jsonbody (strict and bounded); answers
    (`jsonify`, so flask-smorest's `@blp.response` too) written as every other answer is,
    compact UTF-8 by orjson."""

    def loads(self, s, **kwargs):
        """Parse JSON text; MalformedJson (a ValueError) for anything jsonbody refuses."""
        return jsonbody.loads(s)

    def response(self, *args, **kwargs) -> Response:
        """An answer of `args[0]` (or of the keyword arguments) as JSON."""
        if args and kwargs:
            raise TypeError("response() takes either positional or keyword arguments")
        body = args[0] if len(args) == 1 else (list(args) if args else kwargs or None)
        return self._app.response_class(orjson.dumps(body), mimetype=self.mimetype)


class StrictParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies through shared.jsonbody.

    webargs parses bodies with the standard library itself, so a lone surrogate, a deep
    nesting or a 5,000-digit number went through it (or out of it as a 500).
    """

    def load_json(self, req, schema):
        """The body as JSON, `missing` when there is none; 400 malformed_json when bad."""
        if not is_json_request(req):
            return webargs_core.missing
        data = req.get_data(cache=True)
        if not data:
            return webargs_core.missing
        try:
            return jsonbody.loads(data)
        except jsonbody.MalformedJson as exc:
            raise BadRequest(f"Malformed JSON: {exc}") from exc


class JsonRequest(Request):
    """Say plainly when a body is not JSON (Flask's message is generic outside debug)."""

    def on_json_loading_failed(self, e):
        why = str(e) if isinstance(e, jsonbody.MalformedJson) else "The body is not valid JSON"
        raise BadRequest(f"Malformed JSON: {why}")

    @cached_property
    def stream(self):
        """The body stream; a streamed body over MAX_BODY_BYTES is 413, not truncated."""
        limit = self.max_content_length
        if (
            limit is None
            or self.content_length is not None
            or "wsgi.input_terminated" not in self.environ
            or self.shallow
        ):
            return super().stream
        return _MaxBodyStream(self.environ["wsgi.input"], limit)


# The optional query of the read answers (`available`, `availability`): a doctor, and the
# appointment type whose fit each slot reports. Read here rather than by webargs: on these hot
# paths webargs' query parsing cost 50 us of a 350 us answer (bench/results, in-process CPU).
READ_QUERY = {
    "practitioner_id": "a doctor's slots and counts",
    "appointment_type": 'adds "fits" to each slot: whether this type\'s units fit',
}
READ_QUERY_DOC = [
    {
        "in": "query",
        "name": name,
        "required": False,
        "description": description,
        "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"},
    }
    for name, description in READ_QUERY.items()
]


def read_query() -> tuple[str | None, str | None]:
    """(practitioner_id, appointment_type) of this request's query, each None when absent;
    400 validation_error for one that breaks the canonical rule. Other parameters are
    ignored, as in v1."""
    args = request.args
    if not args:
        return None, None
    values = [args.get(name) for name in READ_QUERY]
    bad = {
        name: [ID_RULE]
        for name, value in zip(READ_QUERY, values, strict=True)
        if value is not None and not is_id(value)
    }
    if bad:
        raise ValidationError("The query is not valid", errors=bad)
    return values[0], values[1]
