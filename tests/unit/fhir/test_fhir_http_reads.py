"""The FHIR HTTP layer over fakes (Flask's test client): reads and searches, the caller's own
appointments, and no query or id that is a server error.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir import scheduling
from tests.unit.fhir.fhir_support import (
    bearer,
    book_body,
    check_outcome,
    check_resource,
    fhir_json,
    make_app,
    post,
    slot_ref,
    tomorrow,
)


def test_reads_answer_valid_resources(app, client):
    meta = fhir_json(client.get("/fhir/R4/metadata"))
    assert meta["implementation"]["url"] == "http://localhost/fhir/R4"
    assert fhir_json(client.get("/fhir/R4/Location/h..1"))["name"] == "H One"
    assert fhir_json(client.get("/fhir/R4/Practitioner/h..1.dr..a"))["active"] is True
    assert fhir_json(client.get("/fhir/R4/Schedule/h..1.off"))["active"] is False
    forwarded = client.get("/fhir/R4/metadata", headers={"X-Forwarded-Proto": "https"})
    assert fhir_json(forwarded)["implementation"]["url"] == "https://localhost/fhir/R4"
    for path in (
        "/fhir/R4/Schedule/h_1",
        "/fhir/R4/Schedule/H..1",
        "/fhir/R4/Schedule/h..2",
        "/fhir/R4/Schedule/h..1.nobody",
        "/fhir/R4/Schedule/h..1.dr..a.x",
        "/fhir/R4/Location/h..1.dr..a",
        "/fhir/R4/Practitioner/h..1",
        "/fhir/R4/Practitioner/h..1.nobody",
        "/fhir/R4/Slot/h..1",
        "/fhir/R4/Slot/h..1.19991231.1700",
        "/fhir/R4/Slot/h..1.20261128.1730",
        "/fhir/R4/Schedule/%E2%80%AEx",
        "/fhir/R4/Appointment/x",
        "/fhir/R4/Nothing",
        "/fhir/R4",
        "/fhir",
        "/fhir/R5/metadata",
        "/fhir/R4/metadata/",
        "/fhir/R4/Schedule/",
        "/fhir/R4//Schedule",
    ):
        headers = bearer(app) if "Appointment" in path else {}
        check_outcome(client.get(path, headers=headers), 404)


def test_schedule_search(client):
    both = fhir_json(client.get("/fhir/R4/Schedule?actor=Location/h..1"))
    assert [e["resource"]["id"] for e in both["entry"]] == [
        "h..1",
        "h..1.dr..a",
        "h..1.eve",
        "h..1.off",
    ]
    assert both["total"] == 4
    active = fhir_json(client.get("/fhir/R4/Schedule?actor=Location/h..1&active=false"))
    assert [e["resource"]["id"] for e in active["entry"]] == ["h..1.off"]
    by_id = fhir_json(client.get("/fhir/R4/Schedule?_id=h..1.dr..a,Schedule/h..2,nobody"))
    assert [e["resource"]["id"] for e in by_id["entry"]] == ["h..1.dr..a"]
    doctor = fhir_json(client.get("/fhir/R4/Schedule?actor=Practitioner/h..1.eve&_id=h..1.eve"))
    assert doctor["total"] == 1 and doctor["entry"][0]["fullUrl"].endswith("/Schedule/h..1.eve")
    none = fhir_json(client.get("/fhir/R4/Schedule?actor=Location/h..1&_id=h..1.zz"))
    assert none["total"] == 0
    for query in (
        "?actor=h..1",
        "?actor=Location/h_1",
        "?actor=Slot/h..1",
        "?_id=a_b",
        "?_id=Gomoti",
        "?_id=h..1,Location/h..1",
        "?_id=" + "a" * 51,
        "?actor=Location/h..1&actor=Location/h..1",
        "?_id=" + ",".join("a" * 11),
        "?actor:Location=h..1",
        "?_id=",
        "?active=yes",
    ):
        check_outcome(client.get("/fhir/R4/Schedule" + query), 400, "validation_error")


def slot_search(client, query: str) -> list[dict]:
    """Every Slot of a search, following its next links; each page checked."""
    found, url, pages = [], "/fhir/R4/Slot?" + query, 0
    while url:
        page = fhir_json(client.get(url))
        found.extend(e["resource"] for e in page.get("entry", []) if e["search"]["mode"] == "match")
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        url = urlsplit(nxt[0])._replace(scheme="", netloc="").geturl() if nxt else None
        pages += 1
    return found, pages


def test_slot_search_pages_through_the_window_and_counts_places(app, client):
    day = tomorrow(2)
    for phone in ("+8801700000001", "+8801700000002"):
        assert post(client, book_body(day, "18:00", phone=phone), bearer(app)).status_code == 201
    query = f"schedule=Schedule/h..1&start=ge{day}&start=lt{day + timedelta(days=3)}"
    everything, pages = slot_search(client, query + "&_count=100")
    assert pages == 1 and len(everything) == 6  # three days of two slots
    paged, pages = slot_search(client, query + "&_count=4")
    assert pages == 2 and paged == everything
    ones, pages = slot_search(client, query + "&_count=1")
    assert pages == 6 and ones == everything
    first = everything[1]
    assert first["id"] == fhir_ids.slot_id("h_1", None, day, "18:00")
    counts = client.get(f"/api/availability/h_1/{day}").json["slots"]["18:00"]
    assert first["extension"] == [
        {"url": scheduling.REMAINING_EXTENSION, "valueInteger": counts["available"]}
    ]
    assert counts["available"] == 1 and first["status"] == "free"
    assert fhir_json(client.get("/fhir/R4/" + slot_ref(day, "18:00"))) == first
    # A doctor's own schedule; an appointment type's units; status=free.
    two_units = {"appointmentType": {"coding": [{"code": "new"}]}}
    made = post(client, book_body(day, "20:00", doctor="eve", **two_units), bearer(app))
    assert made.status_code == 201
    eve, _ = slot_search(client, f"schedule=Schedule/h..1.eve&start={day}")
    assert [(s["start"][11:16], s["status"]) for s in eve] == [("20:00", "busy"), ("20:30", "free")]
    free, _ = slot_search(client, f"schedule=h..1.eve&start={day}&status=free")
    assert [s["start"][11:16] for s in free] == ["20:30"]
    # Instants with offsets bound by instant; the booking window bounds everything.
    late, _ = slot_search(
        client, f"schedule=Schedule/h..1&start=gt{day}T17:00:00%2B06:00&start=le{day}T18:00:00Z"
    )
    assert [s["start"] for s in late] == [f"{day}T18:00:00+06:00"]
    window, _ = slot_search(client, "schedule=Schedule/h..1&status=free,busy,busy-unavailable")
    assert len(window) == 31 * 2
    assert slot_search(client, "schedule=Schedule/h..1&start=ge2099-01-01")[0] == []
    assert slot_search(client, "schedule=Schedule/h..1&start=lt2000-01-01")[0] == []
    inactive, _ = slot_search(client, f"schedule=Schedule/h..1.off&start={day}")
    assert {s["status"] for s in inactive} == {"busy-unavailable"}
    nowhere = fhir_json(client.get("/fhir/R4/Slot?schedule=Schedule/nowhere"))
    assert nowhere["total"] == 0 and "entry" not in nowhere


def test_slots_without_counts_are_answered_with_a_warning():
    app, ctx, _ = make_app()
    ctx.capacity.complete = False  # nothing vouches for the counts (Redis lost its data)
    client = app.test_client()
    doc = fhir_json(client.get(f"/fhir/R4/Slot?schedule=Schedule/h..1&start={tomorrow(3)}"))
    assert "extension" not in doc["entry"][0]["resource"]
    assert doc["entry"][-1]["search"]["mode"] == "outcome"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "schedule=",
        "schedule=Schedule/h_1",
        "schedule=Slot/h..1",
        "schedule=Schedule/",
        "schedule=Schedule/h..1&schedule=Schedule/h..1",
        "schedule=Schedule/h..1,h..1",
        "schedule=Schedule/h..1&start=ge2026-13-01",
        "schedule=Schedule/h..1&start=ne2026-11-28",
        "schedule=Schedule/h..1&start=ge2026-11-28&start=ge2026-11-29",
        "schedule=Schedule/h..1&_count=0",
        "schedule=Schedule/h..1&_count=-1",
        "schedule=Schedule/h..1&_count=%D9%A1%D9%A0",
        "schedule=Schedule/h..1&_count=1e3",
        "schedule=Schedule/h..1&_count=100000000000000000000",
        "schedule=Schedule/h..1&status=open",
        "schedule=Schedule/h..1&status=free|busy",
        "schedule=Schedule/h..1&_cursor=x",
        "schedule=Schedule/h..1&_cursor=20261399.1700",
        "schedule=Schedule/h..1&_sort=start",
        "schedule=Schedule/h..1&start:missing=true",
        "schedule=Schedule/%FF%FE",
        "schedule=Schedule/h..1&%FF=1",
        "schedule=Schedule/h..1&start=ge%00",
    ],
)
def test_slot_searches_that_are_not_valid_are_400(client, query):
    check_outcome(client.get("/fhir/R4/Slot?" + query), 400, "validation_error")


def test_appointments_are_the_callers_own(app, client):
    day = tomorrow(2)
    mine = fhir_json(post(client, book_body(day), bearer(app, user="u1")), 201)
    theirs = fhir_json(
        post(client, book_body(day, "18:00", phone="+8801700000008"), bearer(app, user="u2")), 201
    )
    check_outcome(
        client.get(f"/fhir/R4/Appointment/{theirs['id']}", headers=bearer(app)),
        404,
        "appointment_not_found",
    )
    own = fhir_json(client.get("/fhir/R4/Appointment", headers=bearer(app)))
    assert [e["resource"]["id"] for e in own["entry"]] == [mine["id"]] and own["total"] == 1
    # A patient's filters narrow its own; they never widen it.
    assert (
        fhir_json(client.get(f"/fhir/R4/Appointment?_id={theirs['id']}", headers=bearer(app)))[
            "total"
        ]
        == 0
    )
    desk = bearer(app, "staff", "desk")
    everyone = fhir_json(client.get("/fhir/R4/Appointment?location=Location/h..1", headers=desk))
    assert {e["resource"]["id"] for e in everyone["entry"]} == {mine["id"], theirs["id"]}
    for query, expected in (
        (f"date={day}", 2),
        (f"date=gt{day}", 0),
        (f"date=ge{day}&date=le{day}", 2),
        (f"date=lt{day}", 0),
        ("status=booked", 2),
        ("status=cancelled,noshow", 0),
        ("status=proposed", 0),
        (f"slot={slot_ref(day, '18:00')}", 1),
        (f"slot={slot_ref(day, '18:00')}&date=lt{day}", 0),
        ("practitioner=Practitioner/h..1.dr..a", 0),
        ("location=h..2", 0),
        ("location=h..1&practitioner=Practitioner/h..2.x", 0),
        (f"_id={mine['id']},{theirs['id']}", 2),
        (f"_id={'0' * 24}", 0),
        ("_count=1", 2),
    ):
        found = fhir_json(client.get("/fhir/R4/Appointment?" + query, headers=desk))
        assert found["total"] == expected, query
    first = fhir_json(client.get("/fhir/R4/Appointment?_count=1", headers=desk))
    nxt = [link["url"] for link in first["link"] if link["relation"] == "next"][0]
    assert dict(parse_qsl(urlsplit(nxt).query)) == {"_count": "1", "_page": "2"}
    second = fhir_json(
        client.get(urlsplit(nxt)._replace(scheme="", netloc="").geturl(), headers=desk)
    )
    assert [link["relation"] for link in second["link"]] == ["self"]
    assert first["entry"][0]["resource"]["id"] != second["entry"][0]["resource"]["id"]
    # Statuses follow the appointment: cancelled.
    client.delete(f"/api/appointments/{mine['id']}", headers=bearer(app))
    cancelled = fhir_json(client.get(f"/fhir/R4/Appointment/{mine['id']}", headers=bearer(app)))
    assert cancelled["status"] == "cancelled"


@pytest.mark.parametrize(
    "query",
    [
        "date=2026-11-28T10:00:00Z",
        "date=ap2026-11-28",
        "status=done",
        "status=booked&status=noshow",
        "location=Practitioner/h..1.dr..a",
        "location=h_1",
        "practitioner=h..1",
        "slot=Slot/x",
        "_page=0",
        "_page=%D9%A1",
        "_count=201",
        "_id=a_b",
        "_id=abc",
        "_id=65A1B2C3D4E5F60718293A4B",
        "patient=Patient/1",
        "_sort=date",
        "date=ge2026-11-28&date=ge2026-11-29",
    ],
)
def test_appointment_searches_that_are_not_valid_are_400(app, client, query):
    check_outcome(
        client.get("/fhir/R4/Appointment?" + query, headers=bearer(app)), 400, "validation_error"
    )


def test_appointments_need_a_token(client):
    for resp in (
        client.get("/fhir/R4/Appointment"),
        client.get("/fhir/R4/Appointment/65a1b2c3d4e5f60718293a4b"),
        client.get("/fhir/R4/Appointment", headers={"Authorization": "Bearer x.y.z"}),
        post(client, book_body(tomorrow()), {}),
    ):
        check_outcome(resp, 401, "unauthorized")


query_text = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "schedule",
                "start",
                "status",
                "_count",
                "_cursor",
                "_id",
                "actor",
                "active",
                "date",
                "location",
                "practitioner",
                "slot",
                "_page",
                "x",
                "_format",
            ]
        ),
        st.one_of(
            st.sampled_from(
                [
                    "Schedule/h..1",
                    "h..1",
                    "Location/h..1",
                    "ge2026-11-28",
                    "free",
                    "true",
                    "10",
                    "20261128.1700",
                    "Practitioner/h..1.dr..a",
                ]
            ),
            st.text(max_size=15),
        ),
    ),
    max_size=5,
)


# 100 examples (hypothesis's default): 3 resources x 15 parameter names draw every pair a few
# times over (up to 5 parameters an example); the values are the listed ones or any text.
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["Slot", "Schedule", "Appointment"]), query_text)
def test_no_search_is_a_server_error(app, client, resource, pairs):
    resp = client.get(f"/fhir/R4/{resource}?" + urlencode(pairs), headers=bearer(app, "admin"))
    assert resp.status_code in (200, 400, 406), resp.get_data(as_text=True)
    doc = json.loads(resp.get_data())
    check_resource(doc)
    assert doc["resourceType"] == ("Bundle" if resp.status_code == 200 else "OperationOutcome")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(min_size=1, max_size=70).filter(lambda t: "/" not in t and t not in (".", "..")))
def test_no_id_is_a_server_error(app, client, text):
    for kind in ("Schedule", "Slot", "Location", "Practitioner", "Appointment"):
        resp = client.get(f"/fhir/R4/{kind}/{quote(text, safe='')}", headers=bearer(app, "admin"))
        assert resp.status_code in (200, 404), (kind, text, resp.get_data(as_text=True))
        check_resource(json.loads(resp.get_data()))
