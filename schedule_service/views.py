"""HTTP layer of the schedule service: hospitals, available, calendar, admin edits."""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask.views import MethodView

from shared.answers import about, calendar_body, day_document
from shared.auth import current_principal, require_auth
from shared.clock import utcnow
from shared.errors import InvalidDate, InvalidDays
from shared.ids import ascii_uint
from shared.request_parsing import READ_QUERY_DOC, read_query
from shared.slots import parse_date
from shared.web import SlotbookBlueprint, json_answer, no_store

from . import service
from .conflicts import Stranded
from .schemas import (
    AvailableSchema,
    CalendarQueryArgsSchema,
    CalendarSchema,
    ForceArgsSchema,
    HistorySchema,
    HospitalEditSchema,
    HospitalListSchema,
    HospitalSchema,
    HospitalWriteSchema,
    PractitionerListSchema,
    PractitionerWriteSchema,
)

blp = SlotbookBlueprint(
    "dynamic_slots",
    __name__,
    url_prefix="/api/dynamic-slots",
    description="Hospital schedules and the slots they generate",
)

MAX_CALENDAR_DAYS = 92
# Request schemas are given to `arguments` as instances: given a class, webargs builds a new
# schema on every request.


@blp.after_request
def _no_store_for_admins(response):
    """Admin answers (history with who changed what, conflicts listing patients) are never
    kept by a cache on the way."""
    if "Authorization" in request.headers:
        no_store(response)
    return response


def _ctx() -> service.Context:
    return current_app.extensions["schedule.ctx"]


def _etag_of(hospital: dict) -> str:
    return f'"{hospital["hospital_id"]}-v{hospital["version"]}"'


def _not_modified(etag: str):
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        resp = current_app.response_class(status=304)
        resp.headers["ETag"] = etag
        return resp
    return None


@blp.route("/hospitals")
class Hospitals(MethodView):
    @blp.response(200, HospitalListSchema)
    def get(self):
        """Every hospital's configuration (ETag / If-None-Match -> 304)."""
        hospitals = _ctx().repo.list()
        digest = hashlib.sha1(
            ",".join(f"{h['hospital_id']}:{h['version']}" for h in hospitals).encode()
        ).hexdigest()[:20]
        etag = f'"hospitals-{digest}"'
        return _not_modified(etag) or ({"hospitals": hospitals}, {"ETag": etag})

    @require_auth("admin")
    @blp.arguments(HospitalWriteSchema())
    @blp.response(201, HospitalSchema)
    @blp.error_answers(401, 403, 400, 409, 422)
    def post(self, body):
        """Create a hospital (admin)."""
        body.pop("force", None)
        hospital = service.create_hospital(_ctx(), body, current_principal(), utcnow())
        return hospital, {"ETag": _etag_of(hospital)}


@blp.route("/hospitals/<hospital_id:hospital_id>")
class HospitalById(MethodView):
    @blp.response(200, HospitalSchema)
    @blp.error_answers(404)
    def get(self, hospital_id):
        """One hospital's configuration, with its ETag."""
        hospital = service.current_hospital(_ctx(), hospital_id)
        etag = _etag_of(hospital)
        return _not_modified(etag) or (hospital, {"ETag": etag})

    @require_auth("admin")
    @blp.arguments(HospitalWriteSchema())
    @blp.response(200, HospitalEditSchema)
    @blp.error_answers(401, 403, 404, 400, 409, 412, 422)
    def put(self, body, hospital_id):
        """Replace a hospital's configuration (admin; If-Match guards lost updates)."""
        force = body.pop("force", False)
        return _edited(service.replace_hospital(_ctx(), hospital_id, body, _edit_request(force)))


def _edit_request(force: bool) -> service.EditRequest:
    """What every admin edit passes to the service besides its subject."""
    return service.EditRequest(
        who=current_principal(),
        now=utcnow(),
        if_match=request.headers.get("If-Match"),
        force=force,
        authorization=request.headers.get("Authorization", ""),
    )


def _edited(outcome: tuple[dict, Stranded]):
    """An edit's answer: the hospital as it now is (with the appointments, holds and offers
    a forced edit stranded) and its new ETag."""
    hospital, stranded = outcome
    answer = dict(hospital)
    if stranded.appointments:
        answer["stranded_appointments"] = stranded.appointments
    if stranded.holds:
        answer["stranded_holds"] = stranded.holds
    return answer, {"ETag": _etag_of(hospital)}


@blp.route("/hospitals/<hospital_id:hospital_id>/practitioners")
class Practitioners(MethodView):
    @blp.response(200, PractitionerListSchema)
    @blp.error_answers(404)
    def get(self, hospital_id):
        """A hospital's doctors."""
        return {"practitioners": service.practitioners(_ctx(), hospital_id)}


@blp.route("/hospitals/<hospital_id:hospital_id>/practitioners/<practitioner_id:practitioner_id>")
class PractitionerById(MethodView):
    @require_auth("admin")
    @blp.arguments(PractitionerWriteSchema())
    @blp.response(200, HospitalEditSchema)
    @blp.error_answers(400, 401, 403, 404, 409, 412, 422)
    def put(self, body, hospital_id, practitioner_id):
        """Create or replace one doctor (admin; bumps the hospital's version; If-Match with
        the hospital's ETag)."""
        force = body.pop("force", False)
        return _edited(
            service.put_practitioner(
                _ctx(), hospital_id, practitioner_id, body, _edit_request(force)
            )
        )

    @require_auth("admin")
    @blp.arguments(ForceArgsSchema(), location="query")
    @blp.response(200, HospitalEditSchema)
    @blp.error_answers(400, 401, 403, 404, 409, 412)
    def delete(self, args, hospital_id, practitioner_id):
        """Remove one doctor (admin; `?force=true` even if it strands appointments)."""
        return _edited(
            service.delete_practitioner(
                _ctx(), hospital_id, practitioner_id, _edit_request(args["force"])
            )
        )


@blp.route("/hospitals/<hospital_id:hospital_id>/history")
class HospitalHistory(MethodView):
    @require_auth("admin")
    @blp.response(200, HistorySchema)
    @blp.error_answers(401, 403, 404)
    def get(self, hospital_id):
        """Every change of a hospital's configuration, newest first (admin)."""
        service.get_hospital(_ctx(), hospital_id)
        return {"hospital_id": hospital_id, "changes": _ctx().repo.changes(hospital_id)}


@blp.route("/available/<hospital_id:hospital_id>/<day>")
class Available(MethodView):
    @blp.doc(parameters=READ_QUERY_DOC)
    @blp.response(200, AvailableSchema)
    @blp.error_answers(400, 404, 422)
    def get(self, hospital_id, day):
        """The slots of one date with their counts (a doctor's with `practitioner_id`)."""
        date = parse_date(day)
        if date is None:
            raise InvalidDate(f"{day!r} is not a date YYYY-MM-DD")
        asked = service.Asked(hospital_id, *read_query())
        counted = service.day(_ctx(), asked, date, utcnow())
        ((planned, counts),) = counted.days
        return json_answer(
            {
                **about(hospital_id, asked.practitioner_id),
                **day_document(planned, counts, counted.units),
            }
        )


def _asked(hospital_id: str, args: dict) -> service.Asked:
    return service.Asked(hospital_id, args.get("practitioner_id"), args.get("appointment_type"))


@blp.route("/calendar/<hospital_id:hospital_id>")
class Calendar(MethodView):
    @blp.arguments(CalendarQueryArgsSchema(), location="query")
    @blp.response(200, CalendarSchema)
    @blp.error_answers(400, 404, 422)
    def get(self, args, hospital_id):
        """A run of dates (1..92, default 7) from `start` (default today); a doctor's with
        `practitioner_id`."""
        count = ascii_uint(args.get("days", "7"))
        if count is None or not 1 <= count <= MAX_CALENDAR_DAYS:
            raise InvalidDays(f"days must be an integer from 1 to {MAX_CALENDAR_DAYS}")
        start = None
        if "start" in args:
            start = parse_date(args["start"])
            if start is None:
                raise InvalidDate(f"{args['start']!r} is not a date YYYY-MM-DD")
        asked = _asked(hospital_id, args)
        counted = service.calendar(_ctx(), asked, start, count, utcnow())
        return json_answer(calendar_body(hospital_id, asked.practitioner_id, counted))
