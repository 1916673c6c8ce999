"""HL7 FHIR R4 at /fhir/R4 through the gateway (API.md, "Integrations"; README, "FHIR R4"):
the CapabilityStatement, Schedules of a hospital and of its doctors, Slots computed from the
configuration (paged, their remaining places those of /api/availability), booking through the
same gate as the REST API (never overbooked, FHIR and REST racing for the last place), a
patient's own appointments, the visit's statuses, and hostile input (always a 4xx
OperationOutcome, never a 5xx).

Every answer is parsed back with fhir.resources.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from fhir.resources.appointment import Appointment
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.location import Location
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.practitioner import Practitioner
from fhir.resources.schedule import Schedule
from fhir.resources.slot import Slot

from tests.helpers import (
    Api,
    assert_error_shape,
    booking,
    create_hospital,
    fhir_clinic,
    next_weekday,
    open_tonight,
    publish_hospital,
)

FHIR = "/fhir/R4"
MEDIA = "application/fhir+json"
REMAINING = "urn:slotbook:fhir:StructureDefinition:slot-remaining-places"
MODELS = {
    m.__name__: m
    for m in (
        Appointment,
        Bundle,
        CapabilityStatement,
        Location,
        OperationOutcome,
        Practitioner,
        Schedule,
        Slot,
    )
}


def valid(doc: dict) -> dict:
    """A FHIR R4 resource (bundles: every entry too), as fhir.resources reads it."""
    model = MODELS[doc["resourceType"]].parse_obj(doc)
    assert json.loads(model.json()) == doc
    for entry in doc.get("entry", []) if doc["resourceType"] == "Bundle" else []:
        valid(entry["resource"])
    return doc


def fhir(resp: requests.Response, status: int = 200) -> dict:
    """A FHIR answer with that status."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith(MEDIA), resp.headers
    assert resp.headers.get("X-Request-ID")
    return valid(resp.json())


def outcome(resp: requests.Response, status: int, reason: str | None = None) -> dict:
    """An OperationOutcome with that status (and our reason in details.coding)."""
    doc = fhir(resp, status)
    assert doc["resourceType"] == "OperationOutcome", doc
    issue = doc["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    if reason is not None:
        assert issue["details"]["coding"][0]["code"] == reason, doc
    return doc


def fid(*parts: str) -> str:
    """The FHIR id of our ids (README: each _ written .., parts joined by .)."""
    return ".".join(part.replace("_", "..") for part in parts)


def slot_id(hid: str, doctor: str | None, day, start: str) -> str:
    owner = (hid,) if doctor is None else (hid, doctor)
    return f"{fid(*owner)}.{str(day).replace('-', '')}.{start.replace(':', '')}"


def appointment(hid: str, day, start: str, doctor: str | None = None, **changes) -> dict:
    """A FHIR create for a slot: the patient a contained Patient, with a random phone."""
    phone = "+88017" + str(uuid.uuid4().int)[:8]
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": "Slot/" + slot_id(hid, doctor, day, start)}],
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pat",
                "name": [{"given": ["Rahim"], "family": "Uddin"}],
                "telecom": [{"system": "phone", "value": phone}],
            }
        ],
        "participant": [{"actor": {"reference": "#pat"}, "status": "accepted"}],
    }
    body.update(changes)
    return body


def post_fhir(client: Api, body, **headers) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.session.post(
        client.base + FHIR + "/Appointment",
        data=data,
        headers=client._headers({"Content-Type": MEDIA, **headers}),
        timeout=30,
    )


def clinic(admin: Api, capacity: int = 2) -> str:
    """tests.helpers.fhir_clinic: dr_a 3 places a slot, eve 17:00-18:00 in 20 minutes."""
    eve = {"start": "17:00", "end": "18:00", "slot_minutes": 20}
    hid = f"h_{uuid.uuid4().hex[:8]}"
    doc = fhir_clinic(hid, 3, eve, hospital_name="FHIR Clinic", max_appointments_per_slot=capacity)
    return publish_hospital(admin, doc)["hospital_id"]


def all_slots(client: Api, query: str) -> tuple[list[dict], int]:
    """Every Slot a search finds, following the Bundle's next links (absolute URLs)."""
    found, url, pages = [], client.base + FHIR + "/Slot?" + query, 0
    while url:
        page = fhir(client.session.get(url, timeout=30))
        assert page["type"] == "searchset"
        found += [e["resource"] for e in page.get("entry", []) if e["search"]["mode"] == "match"]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        pages += 1
        assert pages < 100
    return found, pages


def remaining(slot: dict) -> int | None:
    values = [e["valueInteger"] for e in slot.get("extension", []) if e["url"] == REMAINING]
    return values[0] if values else None


def test_metadata_lists_what_works(gateway):
    doc = fhir(gateway.get(FHIR + "/metadata"))
    assert doc["resourceType"] == "CapabilityStatement" and doc["fhirVersion"] == "4.0.1"
    assert doc["implementation"]["url"] == gateway.base + FHIR
    served = {
        r["type"]: sorted(i["code"] for i in r["interaction"]) for r in doc["rest"][0]["resource"]
    }
    assert served == {
        "Location": ["read", "search-type"],
        "Practitioner": ["read", "search-type"],
        "Schedule": ["read", "search-type"],
        "Slot": ["read", "search-type"],
        "Appointment": ["create", "read", "search-type"],
    }
    assert fhir(gateway.get(FHIR + "/metadata", headers={"Accept": MEDIA})) == doc


def test_schedules_of_a_hospital_and_of_its_doctors(gateway, admin):
    hid = clinic(admin)
    own = fhir(gateway.get(f"{FHIR}/Schedule/{fid(hid)}"))
    assert own["id"] == fid(hid) and own["active"] is True
    assert own["actor"] == [{"reference": f"Location/{fid(hid)}", "display": "FHIR Clinic"}]
    tz = ZoneInfo("Asia/Dhaka")
    assert own["planningHorizon"]["start"] == f"{datetime.now(tz).date()}T00:00:00+06:00"
    doctor = fhir(gateway.get(f"{FHIR}/Schedule/{fid(hid, 'dr_a')}"))
    assert doctor["actor"][0] == {
        "reference": f"Practitioner/{fid(hid, 'dr_a')}",
        "display": "Dr. A",
    }
    assert doctor["specialty"] == [{"text": "Medicine"}]
    assert fhir(gateway.get(f"{FHIR}/Schedule/{fid(hid, 'off')}"))["active"] is False
    found = fhir(gateway.get(f"{FHIR}/Schedule?actor=Location/{fid(hid)}"))
    assert [e["resource"]["id"] for e in found["entry"]] == [
        fid(hid),
        fid(hid, "dr_a"),
        fid(hid, "eve"),
        fid(hid, "off"),
    ]
    assert found["entry"][0]["fullUrl"] == f"{gateway.base}{FHIR}/Schedule/{fid(hid)}"
    active = fhir(gateway.get(f"{FHIR}/Schedule?actor=Location/{fid(hid)}&active=false"))
    assert [e["resource"]["id"] for e in active["entry"]] == [fid(hid, "off")]
    by_id = fhir(gateway.get(f"{FHIR}/Schedule?_id={fid(hid, 'eve')},{fid(hid, 'nobody')},gomoti"))
    assert [e["resource"]["id"] for e in by_id["entry"]] == [fid(hid, "eve"), "gomoti"]
    seeded = fhir(gateway.get(f"{FHIR}/Schedule?actor=Practitioner/dhanmondi.helal"))
    assert [e["resource"]["id"] for e in seeded["entry"]] == ["dhanmondi.helal"]
    location = fhir(gateway.get(f"{FHIR}/Location/{fid(hid)}"))
    assert location["name"] == "FHIR Clinic"
    assert location["identifier"] == [{"system": "urn:slotbook:hospital_id", "value": hid}]
    assert fhir(gateway.get(f"{FHIR}/Practitioner/{fid(hid, 'eve')}"))["name"] == [
        {"text": "Dr. Eve"}
    ]
    # Ids that are not the one spelling of anything, or of nothing that exists: 404.
    for path in (
        f"Schedule/{hid}",  # our id as it is: `_` is no FHIR id character
        f"Schedule/{fid(hid).upper()}",
        f"Schedule/{fid(hid)}.",
        f"Schedule/{fid(hid, 'nobody')}",
        f"Schedule/{fid('nowhere')}",
        f"Practitioner/{fid(hid)}",
        f"Location/{fid(hid, 'dr_a')}",
        f"Slot/{fid(hid)}.20261399.1700",
    ):
        outcome(gateway.get(f"{FHIR}/{path}"), 404)


def listing(client: Api, query: str) -> tuple[list[str], list[dict]]:
    """The ids of every match of a search, following the Bundle's next links; its pages."""
    ids, pages, url = [], [], client.base + FHIR + "/" + query
    while url:
        page = fhir(client.session.get(url, headers=client._headers(None), timeout=30))
        assert page["type"] == "searchset"
        ids += [e["resource"]["id"] for e in page.get("entry", [])]
        pages.append(page)
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        assert len(pages) < 100
    assert len({page["total"] for page in pages}) == 1  # every page says the same total
    return ids, pages


def counted(client: Api, query: str) -> int:
    """The total of `_summary=count` (a Bundle without entries)."""
    sep = "&" if "?" in query else "?"
    doc = fhir(client.get(f"{FHIR}/{query}{sep}_summary=count"))
    assert doc["type"] == "searchset" and "entry" not in doc
    return doc["total"]


def test_locations_practitioners_and_schedules_are_listed_and_paged(gateway, admin):
    hid = clinic(admin)
    for kind, mine in (
        ("Location", [fid(hid)]),
        ("Practitioner", [fid(hid, d) for d in ("dr_a", "eve", "off")]),
        ("Schedule", [fid(hid)] + [fid(hid, d) for d in ("dr_a", "eve", "off")]),
    ):
        ids, pages = listing(gateway, kind)
        assert set(mine) <= set(ids) and len(ids) == len(set(ids)) == pages[0]["total"]
        paged, pages = listing(gateway, f"{kind}?_count=2")
        assert paged == ids and len(pages) == -(-len(ids) // 2)
        assert counted(gateway, kind) == len(ids)
        for fhir_id in mine:  # each listed resource is its read
            assert fhir(gateway.get(f"{FHIR}/{kind}/{fhir_id}"))["id"] == fhir_id
    locations, _ = listing(gateway, "Location")
    assert {"gomoti", "dhanmondi"} <= set(locations)
    inactive, _ = listing(gateway, "Schedule?active=false")
    assert fid(hid, "off") in inactive and fid(hid, "eve") not in inactive
    # _id lists: the total is the number of matches; next pages through them.
    found, pages = listing(gateway, f"Location?_id={fid(hid)},gomoti,nowhere,gomoti&_count=1")
    assert found == [fid(hid), "gomoti"] and len(pages) == 2 and pages[0]["total"] == 2
    ids = f"{fid(hid, 'eve')},Practitioner/dhanmondi.helal,{fid(hid, 'nobody')}"
    found, pages = listing(gateway, f"Practitioner?_id={ids}&_count=1")
    assert found == [fid(hid, "eve"), "dhanmondi.helal"] and pages[0]["total"] == 2
    found, pages = listing(gateway, f"Schedule?actor=Location/{fid(hid)}&_count=3")
    assert len(found) == 4 and len(pages) == 2 and pages[0]["total"] == 4
    assert counted(gateway, f"Schedule?_id={fid(hid)},gomoti") == 2


def test_appointment_id_lists_count_and_page_on_the_real_store(gateway, admin):
    hid, day = create_hospital(admin, 5), next_weekday(6)
    patient = gateway.new_patient()
    made = [
        fhir(post_fhir(patient, appointment(hid, day, start)), 201)["id"]
        for start in ("09:00", "10:00")
    ]
    a, b = made
    found, pages = listing(admin, f"Appointment?_id={a},{b}&_count=1")
    assert found == [a, b] and len(pages) == 2 and pages[0]["total"] == 2
    found, pages = listing(admin, f"Appointment?_id={b},{a},{b},{'0' * 24}")
    assert found == [a, b] and pages[0]["total"] == 2
    assert counted(admin, f"Appointment?_id={a},{b}") == 2
    assert counted(patient, f"Appointment?_id={a},{b}") == 2
    assert counted(gateway.new_patient(), f"Appointment?_id={a},{b}") == 0
    assert counted(admin, f"Appointment?location=Location/{fid(hid)}") == 2
    assert counted(gateway, f"Slot?schedule=Schedule/{fid(hid)}&start={day}") == 3


def test_slot_search_pages_and_counts_what_availability_counts(gateway, admin):
    hid, day = clinic(admin), next_weekday(6)
    # 09:00: two places taken (full); 10:00: one of two.
    for start in ("09:00", "09:00", "10:00"):
        assert admin.post("/api/appointments", booking(hid, day, start)).status_code == 201
    query = f"schedule=Schedule/{fid(hid)}&start=ge{day}&start=lt{day + timedelta(days=2)}"
    everything, pages = all_slots(gateway, query)
    assert pages == 1 and len(everything) == 6
    paged, pages = all_slots(gateway, query + "&_count=4")
    assert pages == 2 and paged == everything
    ones, pages = all_slots(gateway, query + "&_count=1")
    assert pages == 6 and ones == everything
    counts = gateway.get(f"/api/availability/{hid}/{day}").json()["slots"]
    for slot in everything[:3]:
        start = slot["start"][11:16]
        assert slot["id"] == slot_id(hid, None, day, start)
        assert slot["start"] == f"{day}T{start}:00+06:00"
        assert remaining(slot) == counts[start]["available"]
        assert slot["status"] == ("busy" if counts[start]["available"] == 0 else "free")
        assert slot["schedule"] == {"reference": f"Schedule/{fid(hid)}"}
        assert fhir(gateway.get(f"{FHIR}/Slot/{slot['id']}")) == slot
    assert [remaining(s) for s in everything[:3]] == [0, 1, 2]
    free, _ = all_slots(gateway, query + "&status=free")
    assert [s["id"] for s in free] == [s["id"] for s in everything[1:]]
    # A doctor's own sessions; an instant range with offsets.
    doc_query = f"schedule=Schedule/{fid(hid, 'eve')}&start={day}"
    eve, _ = all_slots(gateway, doc_query)
    assert [s["start"][11:16] for s in eve] == ["17:00", "17:20", "17:40"]
    late, _ = all_slots(
        gateway,
        doc_query.replace(
            f"start={day}", f"start=gt{day}T11:00:00Z&start=le{day}T17:40:00%2B06:00"
        ),
    )
    assert [s["start"][11:16] for s in late] == ["17:20", "17:40"]
    # The booking window bounds every search; a schedule of nothing has no slots.
    window, _ = all_slots(gateway, f"schedule=Schedule/{fid(hid)}&_count=500")
    assert len(window) == 31 * 3
    nothing = fhir(gateway.get(f"{FHIR}/Slot?schedule=Schedule/nowhere"))
    assert nothing["total"] == 0 and "entry" not in nothing


def test_booking_through_fhir_is_booking(gateway, admin, patient):
    hid, day = create_hospital(admin, 5), next_weekday(6)
    made = post_fhir(patient, appointment(hid, day, "10:00", reasonCode=[{"text": "check-up"}]))
    created = fhir(made, 201)
    assert made.headers["Location"] == f"{gateway.base}{FHIR}/Appointment/{created['id']}"
    assert made.headers["Cache-Control"] == "no-store"
    assert created["status"] == "booked"
    assert created["start"] == f"{day}T10:00:00+06:00" and created["end"] == f"{day}T11:00:00+06:00"
    assert created["slot"] == [{"reference": "Slot/" + slot_id(hid, None, day, "10:00")}]
    rest = patient.get(f"/api/appointments/{created['id']}").json()
    assert rest["status"] == "confirmed" and rest["serial"] == 1 and rest["reason"] == "check-up"
    assert rest["patient"] == {
        "name": "Rahim Uddin",
        "phone": created["contained"][0]["telecom"][0]["value"],
    }
    assert fhir(patient.get(f"{FHIR}/Appointment/{created['id']}")) == created
    assert gateway.get(f"/api/availability/{hid}/{day}").json()["slots"]["10:00"]["booked"] == 1
    # Idempotency-Key: a retry replays, books nothing more.
    body = appointment(hid, day, "11:00")
    first = fhir(post_fhir(patient, body, **{"Idempotency-Key": "fhir-e2e-1"}), 201)
    again = post_fhir(patient, body, **{"Idempotency-Key": "fhir-e2e-1"})
    assert fhir(again, 201) == first and again.headers["Idempotent-Replayed"] == "true"
    assert gateway.get(f"/api/availability/{hid}/{day}").json()["slots"]["11:00"]["booked"] == 1
    # The gate's refusals, as OperationOutcomes.
    outcome(post_fhir(patient, body), 409, "duplicate_booking")
    outcome(post_fhir(patient, appointment(hid, day, "10:30")), 422, "slot_not_found")
    far = date.today() + timedelta(days=60)
    outcome(post_fhir(patient, appointment(hid, far, "10:00")), 422, "outside_booking_window")
    outcome(post_fhir(patient, appointment("nowhere", day, "10:00")), 404, "hospital_not_found")
    outcome(post_fhir(gateway, appointment(hid, day, "10:00")), 401, "unauthorized")


def test_units_doctors_and_the_inactive(gateway, admin, patient):
    hid, day = clinic(admin), next_weekday(6)
    new = {"appointmentType": {"coding": [{"code": "new"}]}}
    made = fhir(post_fhir(patient, appointment(hid, day, "09:00", "dr_a", **new)), 201)
    assert made["participant"][1]["actor"]["reference"] == f"Practitioner/{fid(hid, 'dr_a')}"
    assert made["appointmentType"]["coding"][0]["code"] == "new"
    slots, _ = all_slots(gateway, f"schedule={fid(hid, 'dr_a')}&start={day}")
    assert remaining(slots[0]) == 1  # 3 units, a new patient took 2
    outcome(post_fhir(patient, appointment(hid, day, "09:00", "dr_a", **new)), 409, "slot_full")
    outcome(post_fhir(patient, appointment(hid, day, "09:00", "off")), 422, "practitioner_inactive")
    inactive, _ = all_slots(gateway, f"schedule={fid(hid, 'off')}&start={day}&status=free")
    assert inactive == []


def test_the_last_place_goes_to_one_booking_fhir_or_rest(gateway, admin):
    """Three places, two taken: FHIR and REST bookings race for the third, for three slots."""
    hid, day = create_hospital(admin, 3), next_weekday(6)
    for start in ("09:00", "10:00", "11:00"):
        for _ in range(2):
            assert admin.post("/api/appointments", booking(hid, day, start)).status_code == 201

    def attempt(args):
        kind, start = args
        client = gateway.new_patient()
        if kind == "fhir":
            return kind, post_fhir(client, appointment(hid, day, start))
        return kind, client.post("/api/appointments", booking(hid, day, start))

    jobs = [(kind, start) for start in ("09:00", "10:00", "11:00") for kind in ("fhir", "rest") * 6]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(attempt, jobs))
    for start in ("09:00", "10:00", "11:00"):
        mine = [
            (kind, resp) for (kind, s), (_, resp) in zip(jobs, answers, strict=True) if s == start
        ]
        won = [resp for _, resp in mine if resp.status_code == 201]
        assert len(won) == 1, [r.status_code for _, r in mine]
        for kind, resp in mine:
            if resp.status_code == 201:
                continue
            if kind == "fhir":
                outcome(resp, 409, "slot_full")
            else:
                assert_error_shape(resp, 409, "slot_full")
        counts = gateway.get(f"/api/availability/{hid}/{day}").json()["slots"][start]
        assert (counts["booked"], counts["available"]) == (3, 0)
    listed = admin.get(f"/api/appointments?hospital_id={hid}&date={day}&per_page=100").json()
    assert listed["total"] == 9
    serials = sorted((a["slot"]["start"], a["serial"]) for a in listed["appointments"])
    assert serials == [(s, n) for s in ("09:00", "10:00", "11:00") for n in (1, 2, 3)]
    slots, _ = all_slots(gateway, f"schedule={fid(hid)}&start={day}")
    assert [(s["status"], remaining(s)) for s in slots] == [("busy", 0)] * 3


def test_a_patient_sees_only_its_own_appointments(gateway, admin):
    hid, day = create_hospital(admin, 5), next_weekday(6)
    alice, bob = gateway.new_patient(), gateway.new_patient()
    mine = fhir(post_fhir(alice, appointment(hid, day, "09:00")), 201)
    theirs = fhir(post_fhir(bob, appointment(hid, day, "10:00")), 201)
    outcome(alice.get(f"{FHIR}/Appointment/{theirs['id']}"), 404, "appointment_not_found")
    own = fhir(alice.get(f"{FHIR}/Appointment"))
    assert own["total"] == 1 and [e["resource"]["id"] for e in own["entry"]] == [mine["id"]]
    assert own["entry"][0]["resource"] == mine
    assert fhir(alice.get(f"{FHIR}/Appointment?_id={theirs['id']}"))["total"] == 0
    assert fhir(alice.get(f"{FHIR}/Appointment?location=Location/{fid(hid)}"))["total"] == 1
    desk = fhir(admin.get(f"{FHIR}/Appointment?location=Location/{fid(hid)}&date={day}"))
    assert {e["resource"]["id"] for e in desk["entry"]} == {mine["id"], theirs["id"]}
    one = fhir(admin.get(f"{FHIR}/Appointment?slot=Slot/{slot_id(hid, None, day, '10:00')}"))
    assert [e["resource"]["id"] for e in one["entry"]] == [theirs["id"]]
    paged = fhir(admin.get(f"{FHIR}/Appointment?location={fid(hid)}&_count=1"))
    assert paged["total"] == 2 and len(paged["entry"]) == 1
    next_url = next(link["url"] for link in paged["link"] if link["relation"] == "next")
    second = fhir(admin.session.get(next_url, headers=admin._headers(None), timeout=30))
    assert second["entry"][0]["resource"]["id"] != paged["entry"][0]["resource"]["id"]
    outcome(gateway.get(f"{FHIR}/Appointment"), 401, "unauthorized")


def test_the_visit_statuses_map_to_fhirs(gateway, admin):
    hid, today = open_tonight(admin)
    ids = [
        admin.post("/api/appointments", booking(hid, today, "22:00")).json()["appointment_id"]
        for _ in range(3)
    ]

    def status(appointment_id: str) -> tuple[str, str]:
        doc = fhir(admin.get(f"{FHIR}/Appointment/{appointment_id}"))
        ours = [e["valueCode"] for e in doc["extension"] if e["url"].endswith("appointment-status")]
        return doc["status"], ours[0]

    assert status(ids[0]) == ("booked", "confirmed")
    steps = [
        (ids[0], "check-in", ("checked-in", "checked_in")),
        (ids[0], "start", ("arrived", "in_consultation")),
        (ids[0], "complete", ("fulfilled", "completed")),
        (ids[1], "no-show", ("noshow", "no_show")),
    ]
    for appointment_id, step, expected in steps:
        assert admin.post(f"/api/appointments/{appointment_id}/{step}").status_code == 200
        assert status(appointment_id) == expected
    assert admin.delete(f"/api/appointments/{ids[2]}").status_code == 200
    assert status(ids[2]) == ("cancelled", "cancelled")
    found = fhir(admin.get(f"{FHIR}/Appointment?location={fid(hid)}&status=fulfilled,noshow"))
    assert {e["resource"]["id"] for e in found["entry"]} == {ids[0], ids[1]}


HOSTILE_GETS = [
    "/Slot",
    "/Slot?schedule=Schedule/gomoti&schedule=Schedule/gomoti",
    "/Slot?schedule=gomoti&start=ge2026-02-30",
    "/Slot?schedule=gomoti&start=ge%D9%A2%D9%A0%D9%A2%D9%A6-11-28",
    "/Slot?schedule=gomoti&_count=100000000000000000000000",
    "/Slot?schedule=gomoti&_count=-5",
    "/Slot?schedule=gomoti&_count=%D9%A1%D9%A0",
    "/Slot?schedule=gomoti&_count=0",
    "/Slot?schedule=gomoti&_count=",
    "/Slot?schedule=gomoti&_cursor=garbage",
    "/Slot?schedule=gomoti&start=ge2026-11-28&start=gt2026-11-29",
    "/Slot?schedule=gomoti&start=ge2026-11-28T10:00",
    "/Slot?schedule=gomoti&start=ge9999-01-01",
    "/Slot?schedule=Schedule/Gomoti",
    "/Slot?schedule=Schedule/gomoti_",
    "/Slot?schedule=Schedule/%FF",
    "/Slot?schedule=Schedule/gomoti%00",
    "/Slot?schedule=gomoti&%FF%FE=1",
    "/Slot?schedule=gomoti&status=free&status=busy",
    "/Slot?schedule=gomoti&unknown=1",
    "/Slot?schedule:missing=true",
    "/Schedule?actor=Location/a_b",
    "/Schedule?_id=" + ",".join(["gomoti"] * 11),
    "/Schedule?actor=Patient/1",
    "/Schedule?_id=GOMOTI",
    "/Location?_id=" + ",".join(["gomoti"] * 11),
    "/Location?_id=" + ",".join(["a"] * 1000),
    "/Location?_id=gomoti,,dhanmondi",
    "/Location?_id=Gomoti",
    "/Location?_id=%FF%FE",
    "/Practitioner?_id=dhanmondi",
    "/Practitioner?_id=dhanmondi.helal.x",
    "/Practitioner?_summary=true",
    "/Schedule?_summary=count&_count=0",
]
HOSTILE_APPOINTMENT_SEARCHES = [
    "_id=not-an-appointment",
    "_id=" + ",".join(["0" * 24] * 11),
    "_id=" + "0" * 24 + ",",
    "_id=" + "0" * 23,
    "_summary=text",
    "date=2026-11-28T10:00:00Z",
    "date=ge2026-11-28&date=ge2026-11-29",
    "status=done",
    "location=Location/Gomoti",
    "practitioner=dhanmondi",
    "slot=Slot/gomoti.20261128",
    "_count=201",
    "_page=%D9%A1",
    "patient=Patient/1",
]


@pytest.mark.parametrize("path", HOSTILE_GETS)
def test_hostile_searches_are_400_outcomes(gateway, path):
    outcome(gateway.get(FHIR + path), 400, "validation_error")


def test_hostile_appointment_searches_are_400_outcomes(patient):
    for query in HOSTILE_APPOINTMENT_SEARCHES:
        outcome(patient.get(f"{FHIR}/Appointment?{query}"), 400, "validation_error")


def test_hostile_input_is_never_a_server_error(gateway, admin, patient, stack):
    hid, day = create_hospital(admin, 5), next_weekday(6)
    for path in (
        "/Nothing",
        "",
        "/Slot/gomoti.20261128",
        "/Appointment/" + "a" * 24,
        "/Appointment/%E2%80%AE",
        "/Schedule/" + "a" * 65,
        "/metadata/x",
    ):
        headers = {"Authorization": patient._headers(None)["Authorization"]}
        outcome(gateway.get(FHIR + path, headers=headers), 404)
    outcome(gateway.get("/fhir"), 404)
    doc = outcome(gateway.delete(f"{FHIR}/Schedule/gomoti"), 405, "method_not_allowed")
    assert doc["issue"][0]["code"] == "not-supported"
    outcome(gateway.get(FHIR + "/metadata", headers={"Accept": "application/fhir+xml"}), 406)
    outcome(gateway.get(FHIR + "/metadata?_format=xml"), 406, "not_acceptable")
    body = appointment(hid, day, "09:00")
    outcome(post_fhir(patient, json.dumps(body), **{"Content-Type": "text/plain"}), 415)
    outcome(
        post_fhir(patient, json.dumps(body), **{"Content-Type": f"{MEDIA}; charset=utf-16"}), 415
    )
    bad_bodies = {
        b"{": "malformed_json",
        b"\xc3\x28": "malformed_json",  # not UTF-8
        b'{"resourceType": "Appointment", "status": "\\udc00"}': "malformed_json",
        b"[" * 64 + b"]" * 64: "malformed_json",
        b"[]": "validation_error",
        b"42": "validation_error",
        json.dumps({**body, "status": ["booked"]}).encode(): "validation_error",
        json.dumps({**body, "slot": "Slot/x"}).encode(): "validation_error",
        json.dumps({**body, "participant": {"actor": "#pat"}}).encode(): "validation_error",
        json.dumps(
            {**body, "contained": [{"resourceType": "Patient"}]}
        ).encode(): "validation_error",
        json.dumps(
            {**body, "slot": [{"reference": f"Slot/{hid}.x.y"}]}
        ).encode(): "validation_error",
        json.dumps({**body, "start": f"{day}T09:00:00Z"}).encode(): "validation_error",
        json.dumps({**body, "extra": 1}).encode(): "validation_error",
    }
    for data, reason in bad_bodies.items():
        outcome(post_fhir(patient, data), 400, reason)
    phone = appointment(hid, day, "09:00")
    phone["contained"][0]["telecom"][0]["value"] = "+৮৮০১৭১২৩৪৫৬৭৮"  # not ASCII digits
    doc = outcome(post_fhir(patient, phone), 400, "validation_error")
    assert doc["issue"][1]["expression"] == ["Appointment.contained[0].telecom"]
    # A body over the limit: the gateway refuses it before forwarding it, declared or streamed,
    # and on /fhir its own answers are OperationOutcomes too; the service itself answers a
    # body over its limit with one.
    huge = b'{"resourceType": "Appointment", "text": "' + b"x" * 70_000 + b'"}'
    outcome(post_fhir(patient, huge), 413, "payload_too_large")
    streamed = requests.post(
        gateway.base + FHIR + "/Appointment",
        data=iter([huge]),
        headers={"Content-Type": MEDIA, **patient._headers(None)},
        timeout=30,
    )
    outcome(streamed, 413, "payload_too_large")
    outcome(gateway.get(FHIR + "/Slot?schedule=" + "x" * 9000), 414, "uri_too_long")
    direct = requests.post(
        stack.booking_url + FHIR + "/Appointment",
        data=iter([huge]),  # streamed: no Content-Length
        headers={"Content-Type": MEDIA, **patient._headers(None)},
        timeout=30,
    )
    outcome(direct, 413, "payload_too_large")
    assert gateway.get(f"/api/availability/{hid}/{day}").json()["slots"]["09:00"]["booked"] == 0
