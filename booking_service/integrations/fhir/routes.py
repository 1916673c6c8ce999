"""HL7 FHIR R4 at /fhir/R4 (API.md, "Integrations"): the HTTP layer.

Each view checks its request (search parameters: fhir_params; ids: fhir_ids; a create's
body: appointment_create.booking_request), calls one use case of fhir_service and answers the
resource as `application/fhir+json`. A search answers a searchset Bundle whose `total` is the
number of matches (Slot: when one page holds them all) and whose `next` link is the next page;
`_summary=count` answers the total alone. Searches without _id list what there is: the
hospitals and their doctors come from the schedule service's list (directory.py). A create
books through the same gate as POST /api/appointments: the REST API's schema, the booking
limit, Idempotency-Key, the booking metric, then `booking.book`.

Searches are expensive answers: at most EXPENSIVE_CONCURRENCY of them (with the calendar
feeds) are under way at once per process; one more is `503` (transient) with `Retry-After` at
once (shared/concurrency.py). Reads by id, the CapabilityStatement and creates are not limited.

Errors: every layer answers in the contract's error shape (shared/errors.py); an
after_request hook of the app turns every error answer on a /fhir path (the router's 404 and
405, werkzeug's 413, the views' own) into an OperationOutcome with the same status, headers
and reason. The blueprint is a plain Flask one: FHIR is described by its CapabilityStatement,
not by the services' OpenAPI documents (whose errors are the contract's shape).
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlencode

import orjson
from flask import Blueprint, Response, current_app, request

from booking_service.core import booking
from booking_service.core.context import Context
from booking_service.core.idempotency import fingerprint
from booking_service.core.requests import BookAppointment
from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir import listings, params, scheduling
from booking_service.integrations.fhir import service as fhir_service
from booking_service.integrations.fhir.appointment_create import booking_request
from booking_service.integrations.fhir.bundles import searchset
from booking_service.integrations.fhir.datatypes import MEDIA_TYPE
from booking_service.integrations.fhir.directory import Directory, Listed
from booking_service.integrations.fhir.outcomes import outcome_of_error_body
from shared import concurrency, jsonbody
from shared.auth import current_principal
from shared.clock import utcnow
from shared.errors import DomainError, ServiceUnavailable
from shared.errors import ValidationError as RequestInvalid

CONTENT_TYPE = f"{MEDIA_TYPE}; charset=utf-8"
PREFIX = "/fhir"
# What a client may send and accept.
_BODY_TYPES = frozenset({"application/fhir+json", "application/json"})
_ANSWER_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")

blp = Blueprint("fhir", __name__, url_prefix="/fhir/R4")


class NotAcceptable(DomainError):
    """The client accepts no JSON."""

    status = 406
    reason = "not_acceptable"


class UnsupportedMediaType(DomainError):
    """A create whose body is not FHIR JSON in UTF-8."""

    status = 415
    reason = "unsupported_media_type"


class MalformedJson(DomainError):
    """A body that is not strict JSON (shared/jsonbody.py says why)."""

    status = 400
    reason = "malformed_json"


def init_app(app, api, ctx, cfg, run_workers: bool, directory: Directory | None = None) -> None:
    """Register the FHIR routes, and the hook that answers their errors as OperationOutcomes
    (no background work); `directory`: where the searches that list hospitals read them."""
    app.extensions["fhir.directory"] = directory
    concurrency.install(app.extensions, cfg.expensive_concurrency)
    app.register_blueprint(blp)
    app.after_request(errors_as_outcomes)


def is_fhir_path(path: str) -> bool:
    """True for /fhir and everything under it."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def errors_as_outcomes(response: Response) -> Response:
    """An error answer on a /fhir path, in the contract's shape, as an OperationOutcome (same
    status and headers; the reason in details.coding)."""
    if response.status_code < 400 or not is_fhir_path(request.path):
        return response
    if response.mimetype == MEDIA_TYPE:
        return response
    try:
        body = orjson.loads(response.get_data())
    except (orjson.JSONDecodeError, RuntimeError):
        body = None
    outcome = outcome_of_error_body(response.status_code, body)
    response.set_data(outcome.json())
    response.content_type = CONTENT_TYPE
    # A refusal may name what was sent (a duplicate names the phone): no cache keeps it.
    response.headers["Cache-Control"] = "no-store"
    return response


def _ctx() -> Context:
    return current_app.extensions["booking.ctx"]


def _hospitals() -> tuple[Listed, ...]:
    """Every hospital (read only by a search that lists them)."""
    directory = current_app.extensions.get("fhir.directory")
    if directory is None:
        raise ServiceUnavailable("The list of hospitals is not available")
    return directory.hospitals()


def _base() -> str:
    """This server's base URL as the client reached it (the gateway's scheme when it says)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    scheme = forwarded if forwarded in ("http", "https") else request.scheme
    host = request.host if _HOST.fullmatch(request.host) else "localhost"
    return f"{scheme}://{host}{PREFIX}/R4"


def _answer(model, status: int = 200, headers: dict | None = None) -> Response:
    resp = Response(model.json(), status=status, content_type=CONTENT_TYPE)
    if headers:
        resp.headers.update(headers)
    return resp


def _personal(resp: Response) -> Response:
    """Names and phones: no cache keeps them."""
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _search_url(resource: str, replace: dict | None = None) -> str:
    """This search's URL (its parameters, all checked already), with `replace` applied."""
    items = [(k, v) for k, v in request.args.items(multi=True) if k not in (replace or {})]
    items.extend((k, v) for k, v in (replace or {}).items() if v is not None)
    query = urlencode(items, safe="/:,")
    return f"{_base()}/{resource}" + (f"?{query}" if query else "")


def _full_url(resource: str, fhir_id: str | None) -> str:
    return f"{_base()}/{resource}/{fhir_id}"


@blp.before_request
def _negotiate():
    """JSON only: 406 for a client that accepts none; `_format` likewise."""
    header = request.headers.get("Accept")
    if header and request.accept_mimetypes.best_match(_ANSWER_TYPES) is None:
        raise NotAcceptable("Only application/fhir+json is served")
    if "_format" in request.args:
        try:
            params.check_format(request.args)
        except RequestInvalid as exc:
            raise NotAcceptable(exc.message, exc.errors) from exc


def _expensive(view):
    """A search: an expensive answer (its matches may be thousands), so at most
    EXPENSIVE_CONCURRENCY of them (with the calendar feeds) are under way at once per process;
    one more is 503 (transient) with Retry-After at once (shared/concurrency.py)."""

    @functools.wraps(view)
    def limited(*args, **kwargs):
        with current_app.extensions[concurrency.EXTENSION].slot("FHIR searches"):
            return view(*args, **kwargs)

    return limited


def _check(resource: str | None) -> None:
    params.check_names(request.args, resource)


def _counted(resource: str, total: int) -> Response:
    """The answer of `_summary=count`: a searchset Bundle with the total and no entry."""
    return _answer(searchset([], _search_url(resource), total=total))


def _paged(resource: str, found: listings.Found, number: int, count: int) -> Response:
    """A page of a search paged by `_page`: its entries, the total, `next` when there is more."""
    next_url = None
    if number * count < found.total:
        next_url = _search_url(resource, {"_page": str(number + 1)})
    entries = [(_full_url(resource, r.id), r) for r in found.resources]
    return _answer(searchset(entries, _search_url(resource), next_url, found.total))


@blp.get("/metadata")
def metadata():
    """The CapabilityStatement: exactly what this server does."""
    _check(None)
    return _answer(params.capability_statement(_base()))


@blp.get("/Location")
@_expensive
def locations():
    """Locations by _id, or every hospital; paged."""
    _check("Location")
    args = request.args
    ids = params.resource_ids(args, "Location", fhir_ids.read_location)
    summary = params.summary_count(args)
    count, number = params.count(args, params.LISTING_COUNT), params.page(args)
    found = listings.search_locations(_ctx(), _hospitals, ids, number, 0 if summary else count)
    return (
        _counted("Location", found.total) if summary else _paged("Location", found, number, count)
    )


@blp.get("/Practitioner")
@_expensive
def practitioners():
    """Practitioners by _id, or every doctor of every hospital; paged."""
    _check("Practitioner")
    args = request.args
    ids = params.resource_ids(args, "Practitioner", fhir_ids.read_practitioner)
    summary = params.summary_count(args)
    count, number = params.count(args, params.LISTING_COUNT), params.page(args)
    found = listings.search_practitioners(_ctx(), _hospitals, ids, number, 0 if summary else count)
    if summary:
        return _counted("Practitioner", found.total)
    return _paged("Practitioner", found, number, count)


@blp.get("/Location/<fhir_id>")
def location(fhir_id: str):
    """A hospital."""
    _check(None)
    return _answer(fhir_service.read_location(_ctx(), fhir_id))


@blp.get("/Practitioner/<fhir_id>")
def practitioner(fhir_id: str):
    """A doctor of a hospital."""
    _check(None)
    return _answer(fhir_service.read_practitioner(_ctx(), fhir_id))


@blp.get("/Schedule/<fhir_id>")
def schedule(fhir_id: str):
    """A hospital's own schedule, or a doctor's."""
    _check(None)
    return _answer(fhir_service.read_schedule(_ctx(), fhir_id, utcnow()))


@blp.get("/Schedule")
@_expensive
def schedules():
    """Schedules by _id and/or actor, or every Schedule; active; paged."""
    _check("Schedule")
    args = request.args
    ids, actors = params.schedule_ids(args), None
    if (values := params.listed(args, "actor")) is not None:
        actors = []
        for value in values:
            kind, fhir_id = params.typed_reference("actor", value, ("Location", "Practitioner"))
            if kind == "Location":
                actors.append((params.decoded("actor", fhir_id, fhir_ids.read_location), None))
            else:
                actors.append(params.decoded("actor", fhir_id, fhir_ids.read_practitioner))
    active = params.boolean(args, "active")
    summary = params.summary_count(args)
    number = params.page(args)
    if ids is None and actors is None:
        count = params.count(args, params.LISTING_COUNT)
        found = listings.list_schedules(
            _ctx(), _hospitals, active, number, 0 if summary else count, utcnow()
        )
    else:
        matches = fhir_service.search_schedules(_ctx(), ids, actors, active, utcnow())
        # Without _count, every match is one page (as a search by _id or actor always was).
        count = max(1, len(matches))
        if params.single(args, "_count") is not None:
            count = params.count(args, params.LISTING_COUNT)
        page = fhir_service.page_of(matches, number, 0 if summary else count)
        found = listings.Found(page, len(matches))
    return (
        _counted("Schedule", found.total) if summary else _paged("Schedule", found, number, count)
    )


@blp.get("/Slot/<fhir_id>")
def slot(fhir_id: str):
    """One slot, computed now."""
    _check(None)
    found = fhir_ids.read_slot(fhir_id)
    if found is None:
        raise fhir_service.ResourceNotFound(f"No Slot {fhir_id!r}")
    view = fhir_service.read_slot(_ctx(), *found, utcnow())
    return _answer(scheduling.slot(view))


@blp.get("/Slot")
@_expensive
def slots():
    """A schedule's slots in a time range (the booking window bounds it), paged."""
    _check("Slot")
    args = request.args
    value = params.single(args, "schedule")
    if value is None:
        raise params.invalid("schedule", "is required: Schedule/<id>")
    schedule_id = params.reference_id("schedule", value, "Schedule")
    hospital_id, doctor_id = params.decoded("schedule", schedule_id, fhir_ids.read_schedule)
    bounds = params.date_range(args, "start")
    statuses = params.slot_statuses(args)
    after = params.cursor(args)
    count = params.count(args, params.SLOT_COUNT)
    if params.summary_count(args):  # every match, wherever _cursor is
        total = fhir_service.count_slots(_ctx(), hospital_id, doctor_id, bounds, statuses, utcnow())
        return _counted("Slot", total)
    page = fhir_service.search_slots(
        _ctx(), hospital_id, doctor_id, bounds, statuses, after, count, utcnow()
    )
    entries = [(_full_url("Slot", view.fhir_id), scheduling.slot(view)) for view in page.slots]
    next_url = None
    if page.next is not None:
        next_url = _search_url("Slot", {"_cursor": params.write_cursor(*page.next)})
    warning = None
    if not page.counts_known:
        warning = (
            "Counts are unknown right now (the capacity store is unavailable or rebuilding): "
            "slots without the remaining-places extension may be full"
        )
    # The total is known when this page is the whole answer.
    total = len(entries) if next_url is None and after is None else None
    return _answer(searchset(entries, _search_url("Slot"), next_url, total, warning))


@blp.get("/Appointment/<fhir_id>")
def appointment(fhir_id: str):
    """One appointment: the caller's own (staff and admins: any)."""
    who = current_principal()
    _check(None)
    return _personal(_answer(fhir_service.read_appointment(_ctx(), who, fhir_id)))


@blp.get("/Appointment")
@_expensive
def appointments():
    """The caller's appointments (staff and admins: any), filtered, paged."""
    who = current_principal()
    _check("Appointment")
    args = request.args
    query = {}
    query["ids"] = params.appointment_ids(args)
    query["statuses"] = params.appointment_statuses(args)
    first, last = params.day_bounds(params.date_range(args, "date", days_only=True))
    query.update(first_day=first, last_day=last)
    if (value := params.single(args, "location")) is not None:
        fhir_id = params.reference_id("location", value, "Location")
        query["hospital_id"] = params.decoded("location", fhir_id, fhir_ids.read_location)
    if (value := params.single(args, "practitioner")) is not None:
        fhir_id = params.reference_id("practitioner", value, "Practitioner")
        query["practitioner"] = params.decoded("practitioner", fhir_id, fhir_ids.read_practitioner)
    if (value := params.single(args, "slot")) is not None:
        fhir_id = params.reference_id("slot", value, "Slot")
        query["slot"] = params.decoded("slot", fhir_id, fhir_ids.read_slot)
    count = params.count(args, params.APPOINTMENT_COUNT)
    number = params.page(args)
    summary = params.summary_count(args)
    found, total = fhir_service.search_appointments(
        _ctx(), who, fhir_service.AppointmentQuery(**query), number, 0 if summary else count
    )
    if summary:
        return _personal(_counted("Appointment", total))
    next_url = None
    if number * count < total:
        next_url = _search_url("Appointment", {"_page": str(number + 1)})
    entries = [(_full_url("Appointment", a.id), a) for a in found]
    bundle = searchset(entries, _search_url("Appointment"), next_url, total)
    return _personal(_answer(bundle))


def _body() -> object:
    """The request body: FHIR JSON (or JSON) in UTF-8, parsed as strictly as every body."""
    if request.mimetype not in _BODY_TYPES:
        raise UnsupportedMediaType("The body must be application/fhir+json")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("The body must be UTF-8")
    data = request.get_data(cache=True)
    if not data:
        raise MalformedJson("The request body is empty: send an Appointment")
    try:
        return jsonbody.loads(data)
    except jsonbody.MalformedJson as exc:
        raise MalformedJson(str(exc)) from exc


@blp.post("/Appointment")
def create_appointment():
    """Book the Slot an Appointment names, through the same gate as POST /api/appointments."""
    who = current_principal()
    _check(None)
    ctx = _ctx()
    now = utcnow()
    # What webargs and the schema do before the REST view runs: not a booking attempt yet.
    body = fhir_service.booking_body(ctx, booking_request(_body()), now)
    key = request.headers.get("Idempotency-Key")
    digest = fingerprint(body) if key is not None else ""
    status, answer, replayed = booking.book_once(
        ctx, who, BookAppointment(**body), now, key, digest
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    if status >= 400:  # a refusal replayed, as it was answered the first time
        return _personal(_answer(outcome_of_error_body(status, answer), status, headers))
    created = fhir_service.created_appointment(ctx, answer)
    headers["Location"] = _full_url("Appointment", created.id)
    return _personal(_answer(created, 201, headers))
