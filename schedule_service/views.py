"""HTTP layer of the schedule service: hospitals, available, calendar, admin edits."""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask.views import MethodView

from shared.answers import day_document
from shared.auth import current_principal, require_auth
from shared.clock import utcnow
from shared.errors import InvalidDate, InvalidDays
from shared.ids import ascii_uint
from shared.schemas import ApiErrorSchema
from shared.slots import parse_date
from shared.web import SlotbookBlueprint, json_answer, no_store

from . import service
from .schemas import (
    AvailableSchema,
    CalendarQueryArgsSchema,
    CalendarSchema,
    HistorySchema,
    HospitalEditSchema,
    HospitalListSchema,
    HospitalSchema,
    HospitalWriteSchema,
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
    @blp.alt_response(401, schema=ApiErrorSchema)
    @blp.alt_response(403, schema=ApiErrorSchema)
    @blp.alt_response(400, schema=ApiErrorSchema)
    @blp.alt_response(409, schema=ApiErrorSchema)
    @blp.alt_response(422, schema=ApiErrorSchema)
    def post(self, body):
        """Create a hospital (admin)."""
        body.pop("force", None)
        hospital = service.create_hospital(_ctx(), body, current_principal(), utcnow())
        return hospital, {"ETag": _etag_of(hospital)}


@blp.route("/hospitals/<hospital_id:hospital_id>")
class HospitalById(MethodView):
    @blp.response(200, HospitalSchema)
    @blp.alt_response(404, schema=ApiErrorSchema)
    def get(self, hospital_id):
        """One hospital's configuration, with its ETag."""
        hospital = service.current_hospital(_ctx(), hospital_id)
        etag = _etag_of(hospital)
        return _not_modified(etag) or (hospital, {"ETag": etag})

    @require_auth("admin")
    @blp.arguments(HospitalWriteSchema())
    @blp.response(200, HospitalEditSchema)
    @blp.alt_response(401, schema=ApiErrorSchema)
    @blp.alt_response(403, schema=ApiErrorSchema)
    @blp.alt_response(404, schema=ApiErrorSchema)
    @blp.alt_response(400, schema=ApiErrorSchema)
    @blp.alt_response(409, schema=ApiErrorSchema)
    @blp.alt_response(412, schema=ApiErrorSchema)
    @blp.alt_response(422, schema=ApiErrorSchema)
    def put(self, body, hospital_id):
        """Replace a hospital's configuration (admin; If-Match guards lost updates)."""
        force = body.pop("force", False)
        hospital, stranded = service.replace_hospital(
            _ctx(),
            hospital_id,
            body,
            current_principal(),
            utcnow(),
            if_match=request.headers.get("If-Match"),
            force=force,
            authorization=request.headers.get("Authorization", ""),
        )
        answer = dict(hospital, stranded_appointments=stranded) if stranded else hospital
        return answer, {"ETag": _etag_of(hospital)}


@blp.route("/hospitals/<hospital_id:hospital_id>/history")
class HospitalHistory(MethodView):
    @require_auth("admin")
    @blp.response(200, HistorySchema)
    @blp.alt_response(401, schema=ApiErrorSchema)
    @blp.alt_response(403, schema=ApiErrorSchema)
    @blp.alt_response(404, schema=ApiErrorSchema)
    def get(self, hospital_id):
        """Every change of a hospital's configuration, newest first (admin)."""
        service.get_hospital(_ctx(), hospital_id)
        return {"hospital_id": hospital_id, "changes": _ctx().repo.changes(hospital_id)}


@blp.route("/available/<hospital_id:hospital_id>/<day>")
class Available(MethodView):
    @blp.response(200, AvailableSchema)
    @blp.alt_response(400, schema=ApiErrorSchema)
    @blp.alt_response(404, schema=ApiErrorSchema)
    def get(self, hospital_id, day):
        """The slots of one date with their counts."""
        date = parse_date(day)
        if date is None:
            raise InvalidDate(f"{day!r} is not a date YYYY-MM-DD")
        now = utcnow()
        planned, counts = service.day(_ctx(), hospital_id, date, now)
        return json_answer({"hospital_id": hospital_id, **day_document(planned, counts)})


@blp.route("/calendar/<hospital_id:hospital_id>")
class Calendar(MethodView):
    @blp.arguments(CalendarQueryArgsSchema(), location="query")
    @blp.response(200, CalendarSchema)
    @blp.alt_response(400, schema=ApiErrorSchema)
    @blp.alt_response(404, schema=ApiErrorSchema)
    def get(self, args, hospital_id):
        """A run of dates (1..92, default 7) from `start` (default today)."""
        count = ascii_uint(args.get("days", "7"))
        if count is None or not 1 <= count <= MAX_CALENDAR_DAYS:
            raise InvalidDays(f"days must be an integer from 1 to {MAX_CALENDAR_DAYS}")
        start = None
        if "start" in args:
            start = parse_date(args["start"])
            if start is None:
                raise InvalidDate(f"{args['start']!r} is not a date YYYY-MM-DD")
        now = utcnow()

        days = service.calendar(_ctx(), hospital_id, start, count, now)
        return json_answer(
            {
                "hospital_id": hospital_id,
                "start": days[0][0].iso,
                "days": [day_document(day, counts) for day, counts in days],
            }
        )
