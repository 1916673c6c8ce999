"""The FHIR HTTP layer over fakes (Flask's test client): creates through the booking gate
(places, Idempotency-Key, the limit and metric), and the HTTP layer's own errors.
"""

from __future__ import annotations

import json

from shared import metrics
from tests.unit.fhir.fhir_support import (
    bearer,
    book_body,
    check_outcome,
    fhir_json,
    make_app,
    post,
    slot_ref,
    tomorrow,
)


def test_booking_through_fhir_takes_places_through_the_gate(app, client):
    day = tomorrow(2)
    made = post(client, book_body(day), bearer(app))
    created = fhir_json(made, 201)
    assert made.headers["Location"] == f"http://localhost/fhir/R4/Appointment/{created['id']}"
    assert made.headers["Cache-Control"] == "no-store"
    assert created["status"] == "booked" and created["slot"] == [{"reference": slot_ref(day)}]
    rest = client.get(f"/api/appointments/{created['id']}", headers=bearer(app)).json
    assert rest["status"] == "confirmed" and rest["patient"]["name"] == "Rahim Uddin"
    assert rest["serial"] == 1
    read = fhir_json(client.get(f"/fhir/R4/Appointment/{created['id']}", headers=bearer(app)))
    assert read == created
    # The default appointment type is one unit: a second place, then the slot is full.
    duplicate = post(client, book_body(day), bearer(app))
    check_outcome(duplicate, 409, "duplicate_booking")
    assert duplicate.json["issue"][0]["code"] == "duplicate"
    assert post(client, book_body(day, phone="+8801700000003"), bearer(app)).status_code == 201
    full = post(client, book_body(day, phone="+8801700000004"), bearer(app))
    check_outcome(full, 409, "slot_full")
    assert client.get(f"/api/availability/h_1/{day}").json["slots"]["17:00"]["booked"] == 2
    # Two units for a new patient: only one place is left in the 18:00 slot of 3.
    new = book_body(
        day, "18:00", phone="+8801700000010", appointmentType={"coding": [{"code": "new"}]}
    )
    assert post(client, new, bearer(app)).status_code == 201
    check_outcome(
        post(
            client,
            dict(new, contained=book_body(day, phone="+8801700000005")["contained"]),
            bearer(app),
        ),
        409,
        "slot_full",
    )
    # The gate's own refusals, as OperationOutcomes.
    check_outcome(post(client, book_body(tomorrow(60)), bearer(app)), 422, "outside_booking_window")
    check_outcome(post(client, book_body(day, "17:30"), bearer(app)), 422, "slot_not_found")
    check_outcome(
        post(client, book_body(day, doctor="off"), bearer(app)), 422, "practitioner_inactive"
    )
    check_outcome(
        post(client, book_body(day, doctor="nobody"), bearer(app)), 404, "practitioner_not_found"
    )
    bad_type = book_body(
        day, "18:00", phone="+8801700000006", appointmentType={"coding": [{"code": "zz"}]}
    )
    check_outcome(post(client, bad_type, bearer(app)), 422, "appointment_type_not_found")


def test_start_and_end_must_be_the_slots(app, client):
    day = tomorrow(2)
    start = f"{day}T17:00:00+06:00"
    ok = post(client, book_body(day, start=start, end=f"{day}T12:00:00Z"), bearer(app))
    assert ok.status_code == 201, ok.json
    wrong = post(
        client, book_body(day, phone="+8801700000009", start=f"{day}T17:00:00Z"), bearer(app)
    )
    doc = check_outcome(wrong, 400, "validation_error")
    assert doc["issue"][1]["expression"] == ["Appointment.start"]


def test_the_rest_schema_checks_what_a_create_carries(app, client):
    day = tomorrow(2)
    for phone in ("12345", "+880 1712345678", "০১৭১২৩৪৫৬৭৮"):
        doc = check_outcome(post(client, book_body(day, phone=phone), bearer(app)), 400)
        assert doc["issue"][1]["expression"] == ["Appointment.contained[0].telecom"]
    named = book_body(day)
    named["contained"][0]["name"] = [{"text": "Bad\u2028name"}]
    check_outcome(post(client, named, bearer(app)), 400, "validation_error")


def test_idempotency_key_replays_the_first_answer(app, client):
    day = tomorrow(2)
    headers = {**bearer(app), "Idempotency-Key": "fhir-1"}
    first = fhir_json(post(client, book_body(day), headers), 201)
    again = post(client, book_body(day), headers)
    assert fhir_json(again, 201) == first and again.headers["Idempotent-Replayed"] == "true"
    other = post(client, book_body(day, phone="+8801700000007"), headers)
    check_outcome(other, 422, "idempotency_key_reused")


def test_the_http_layers_own_errors_are_outcomes(app, client):
    day = tomorrow(2)
    auth = bearer(app)
    doc = check_outcome(client.delete("/fhir/R4/Schedule/h..1"), 405, "method_not_allowed")
    assert doc["issue"][0]["code"] == "not-supported"
    assert "GET" in client.put("/fhir/R4/Appointment", headers=auth).headers["Allow"]
    check_outcome(client.get("/fhir/R4/metadata", headers={"Accept": "application/fhir+xml"}), 406)
    check_outcome(client.get("/fhir/R4/metadata?_format=xml"), 406, "not_acceptable")
    assert fhir_json(client.get("/fhir/R4/metadata?_format=json", headers={"Accept": "*/*"}))
    check_outcome(client.get("/fhir/R4/metadata?mode=full"), 400, "validation_error")
    body = json.dumps(book_body(day))
    for content_type in (
        "text/plain",
        "application/xml",
        "application/fhir+json; charset=latin-1",
        None,
    ):
        headers = dict(auth, **({"Content-Type": content_type} if content_type else {}))
        check_outcome(
            client.post("/fhir/R4/Appointment", data=body, headers=headers),
            415,
            "unsupported_media_type",
        )
    hostile = {
        b"": "malformed_json",
        b"{": "malformed_json",
        b"\xff\xfe{}": "malformed_json",
        b'{"resourceType": "Appointment", "status": "\\ud800"}': "malformed_json",
        b"[" * 40 + b"]" * 40: "malformed_json",
        b"[]": "validation_error",
        b"null": "validation_error",
        b'"Appointment"': "validation_error",
        b'{"resourceType": "Appointment"}': "validation_error",
        json.dumps(
            {**book_body(day), "slot": {"reference": slot_ref(day)}}
        ).encode(): "validation_error",
        json.dumps({**book_body(day), "participant": [[[[{}]]]]}).encode(): "validation_error",
        json.dumps({**book_body(day), "status": True}).encode(): "validation_error",
        json.dumps({**book_body(day), "x" * 1000: 1}).encode(): "validation_error",
    }
    for data, reason in hostile.items():
        resp = client.post(
            "/fhir/R4/Appointment",
            data=data,
            headers=dict(auth, **{"Content-Type": "application/fhir+json"}),
        )
        check_outcome(resp, 400, reason)
    huge = b'{"resourceType": "Appointment", "text": "' + b"x" * 70000 + b'"}'
    too_large = client.post(
        "/fhir/R4/Appointment",
        data=huge,
        headers=dict(auth, **{"Content-Type": "application/fhir+json"}),
    )
    check_outcome(too_large, 413, "payload_too_large")
    # The REST API keeps its own error shape.
    rest = client.get("/api/appointments/nope", headers=auth)
    assert rest.status_code == 404 and rest.json["error"] == "appointment_not_found"


def test_the_booking_limit_and_metric_are_the_rest_apis():
    app = make_app(booking_limit=1)[0]
    client = app.test_client()
    before = metrics.BOOKINGS.labels("confirmed")._value.get()
    assert post(client, book_body(tomorrow(2)), bearer(app)).status_code == 201
    assert metrics.BOOKINGS.labels("confirmed")._value.get() == before + 1
    limited = post(client, book_body(tomorrow(3)), bearer(app))
    check_outcome(limited, 429, "rate_limited")
    assert limited.headers.get("Retry-After")
    # The front desk is not limited.
    assert post(client, book_body(tomorrow(3)), bearer(app, "staff", "desk")).status_code == 201
