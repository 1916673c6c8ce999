"""What the FHIR unit tests share: what every answer must be (parsed back with fhir.resources,
its codes checked against R4's value sets: fhir.resources checks types and cardinalities,
not bindings), a hospital, a create's body, and an app over fakes with its requests.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fhir.resources.appointment import Appointment
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.location import Location
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.practitioner import Practitioner
from fhir.resources.schedule import Schedule
from fhir.resources.slot import Slot

import booking_service
from booking_service.integrations.fhir import appointments, outcomes, scheduling
from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir.directory import Listed, listed
from shared.auth import issue_token
from shared.config import Config
from tests.helpers import fhir_clinic
from tests.unit.fakes import fake_context, fake_services

# R4 value sets the answers bind to (fhir.resources does not check bindings).
ISSUE_TYPES = {
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "security",
    "login",
    "unknown",
    "expired",
    "forbidden",
    "suppressed",
    "processing",
    "not-supported",
    "duplicate",
    "multiple-matches",
    "not-found",
    "deleted",
    "too-long",
    "code-invalid",
    "extension",
    "too-costly",
    "business-rule",
    "conflict",
    "transient",
    "lock-error",
    "no-store",
    "exception",
    "timeout",
    "incomplete",
    "throttled",
    "informational",
}
SEVERITIES = {"fatal", "error", "warning", "information"}
PARTICIPATION_STATUSES = {"accepted", "declined", "tentative", "needs-action"}
MODELS = {
    "Appointment": Appointment,
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "Location": Location,
    "OperationOutcome": OperationOutcome,
    "Practitioner": Practitioner,
    "Schedule": Schedule,
    "Slot": Slot,
}

ZONE = ZoneInfo("Asia/Dhaka")

# -- what every answer must be ------------------------------------------------------------


def check_resource(doc: dict) -> None:
    """`doc` parses as its FHIR R4 model and keeps R4's bindings and invariants."""
    model = MODELS[doc["resourceType"]].parse_obj(doc)
    assert json.loads(model.json()) == doc  # nothing dropped or added by the model
    kind = doc["resourceType"]
    for extension in doc.get("extension", []):  # ext-1: a value or extensions, not both
        assert extension["url"] and sum(k.startswith("value") for k in extension) == 1
    if kind == "Bundle":
        for entry in doc.get("entry", []):
            check_resource(entry["resource"])
            assert entry["search"]["mode"] in ("match", "outcome", "include")
    elif kind == "OperationOutcome":
        assert doc["issue"]
        for issue in doc["issue"]:
            assert issue["severity"] in SEVERITIES and issue["code"] in ISSUE_TYPES
    elif kind == "Appointment":
        assert doc["status"] in appointments.FHIR_APPOINTMENT_STATUSES
        assert "start" in doc and "end" in doc  # app-3: only proposed/cancelled may lack them
        for participant in doc["participant"]:  # app-1: type or actor
            assert participant.get("type") or participant.get("actor")
            assert participant["status"] in PARTICIPATION_STATUSES
        for contained in doc.get("contained", []):  # dom-3: referenced from the resource
            assert any(
                p.get("actor", {}).get("reference") == "#" + contained["id"]
                for p in doc["participant"]
            )
    elif kind == "Slot":
        assert doc["status"] in scheduling.SLOT_STATUSES
        assert datetime.fromisoformat(doc["start"]) < datetime.fromisoformat(doc["end"])


def check_outcome(resp, status: int, reason: str | None = None) -> dict:
    """An OperationOutcome answer with that status (and our reason)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.content_type == "application/fhir+json; charset=utf-8"
    doc = json.loads(resp.get_data())
    assert doc["resourceType"] == "OperationOutcome", doc
    check_resource(doc)
    first = doc["issue"][0]
    assert first["severity"] == "error" and first["diagnostics"]
    assert first["details"]["coding"][0]["system"] == outcomes.ERROR_SYSTEM
    if reason is not None:
        assert first["details"]["coding"][0]["code"] == reason, doc
    return doc


def fhir_json(resp, status: int = 200) -> dict:
    """A FHIR answer: its status, media type, and a valid resource."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.content_type == "application/fhir+json; charset=utf-8"
    doc = json.loads(resp.get_data())
    check_resource(doc)
    return doc


SLOTS = [{"start": "17:00", "end": "18:00"}, {"start": "18:00", "end": "19:00", "capacity": 3}]
# H One: every day 17:00-19:00, dr_a 1 place a slot, eve 20:00-21:00 in half hours.
HOSPITAL = fhir_clinic(
    "h_1",
    1,
    {"start": "20:00", "end": "21:00", "slot_minutes": 30},
    hospital_name="H One",
    schedule={str(d): {"slots": SLOTS} for d in range(7)},
    max_appointments_per_slot=2,
    version=3,
)


def dump(model) -> dict:
    return json.loads(model.json())


def create_body(**changes) -> dict:
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": "Slot/h..1.dr..a.20261128.1700"}],
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p1",
                "name": [{"given": ["Rahim"], "family": "Uddin"}],
                "telecom": [{"system": "phone", "value": "+8801712345678"}],
            }
        ],
        "participant": [
            {"actor": {"reference": "#p1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/h..1.dr..a"}, "status": "accepted"},
            {"actor": {"reference": "Location/h..1"}, "status": "accepted"},
        ],
        "appointmentType": {"coding": [{"system": appointments.TYPE_SYSTEM, "code": "new"}]},
        "reasonCode": [{"text": "follow-up"}],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


# -- the HTTP layer over fakes ----------------------------------------------------------------


class FakeHospitalList:
    """The schedule service's list of hospitals (directory.HospitalList) over the fake
    schedule service's documents."""

    def __init__(self, schedules):
        self.schedules = schedules
        self.reads = 0

    def hospitals(self) -> tuple[Listed, ...]:
        self.reads += 1
        return listed(self.schedules.docs.values())


def make_app(hospital: dict | None = None, booking_limit: int = 1000):
    """(app, its fake Context, the fake schedule service) with `hospital` published."""
    cfg = Config(bcrypt_rounds=4, reconciler_enabled=False, booking_limit=booking_limit)
    ctx, schedules = fake_context(cfg)
    schedules.publish(hospital or HOSPITAL)
    services = dataclasses.replace(fake_services(ctx), hospitals=FakeHospitalList(schedules))
    app = booking_service.create_app(cfg, services=services, start_reconciler=False)
    return app, ctx, schedules


def bearer(app, role="patient", user="u1") -> dict:
    secret = app.config["SLOTBOOK"].jwt_secret
    return {"Authorization": "Bearer " + issue_token(secret, 60, user, f"{user}@x.io", role)}


def tomorrow(days: int = 1) -> date:
    return datetime.now(ZONE).date() + timedelta(days=days)


def slot_ref(day: date, start: str = "17:00", doctor: str | None = None) -> str:
    return "Slot/" + fhir_ids.slot_id("h_1", doctor, day, start)


def book_body(day: date, hhmm="17:00", doctor=None, phone="+8801712345678", **changes) -> dict:
    participants = [{"actor": {"reference": "#p1"}, "status": "accepted"}]
    body = create_body(
        slot=[{"reference": slot_ref(day, hhmm, doctor)}],
        participant=participants,
        appointmentType=None,
        reasonCode=None,
    )
    body["contained"][0]["telecom"][0]["value"] = phone
    body.update(changes)
    return body


def post(client, body, headers, **kw):
    return client.post(
        "/fhir/R4/Appointment",
        data=json.dumps(body),
        headers={"Content-Type": "application/fhir+json", **headers},
        **kw,
    )
