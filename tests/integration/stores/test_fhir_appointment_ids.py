"""FHIR Appointment searches by `_id` list against the session's real MongoDB (nx-27017, or
$MONGO_URL): Bundle.total is the number of matches and `next` pages through them, on both.
(nx-27017 counts no `_id` filter: count_documents answers 0 where find finds them.)

The FHIR app is the unit tests' (tests/unit/fhir/fhir_support.py: fakes for the capacity gate
and the schedule service), its appointments the real repository.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest

from booking_service.adapters.repository import AppointmentRepository
from tests.unit.fhir.fhir_support import bearer, book_body, fhir_json, make_app, post, tomorrow


@pytest.fixture
def fhir_app(db):
    app, ctx, _ = make_app()
    ctx.appointments = AppointmentRepository(db)
    return app


def phone() -> str:
    return "+88017" + str(uuid.uuid4().int)[:8]


def search(client, url: str, headers) -> tuple[list[str], list[dict]]:
    """Every match of a search, following its next links; and its pages."""
    ids, pages = [], []
    while url:
        page = fhir_json(client.get(url, headers=headers))
        ids += [e["resource"]["id"] for e in page.get("entry", [])]
        pages.append(page)
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        url = urlsplit(nxt[0])._replace(scheme="", netloc="").geturl() if nxt else None
        assert len(pages) < 10
    return ids, pages


def test_an_id_list_counts_its_matches_and_pages_through_them(fhir_app):
    client = fhir_app.test_client()
    day = tomorrow(3)
    made = [
        fhir_json(post(client, book_body(day, hhmm, phone=phone()), bearer(fhir_app)), 201)["id"]
        for hhmm in ("17:00", "18:00", "18:00")
    ]
    a, b, c = made
    desk = bearer(fhir_app, "staff", "desk")
    found, pages = search(client, f"/fhir/R4/Appointment?_id={a},{b}&_count=1", desk)
    assert found == [a, b] and len(pages) == 2
    assert [p["total"] for p in pages] == [2, 2]
    found, pages = search(client, f"/fhir/R4/Appointment?_id={c},{a},{c},{'0' * 24}", desk)
    assert found == [a, c] and pages[0]["total"] == 2
    counted = fhir_json(
        client.get(f"/fhir/R4/Appointment?_id={a},{b},{c}&_summary=count", headers=desk)
    )
    assert counted["total"] == 3 and "entry" not in counted
    # The patient who booked them all, and one who booked none.
    mine, _ = search(client, f"/fhir/R4/Appointment?_id={a},{b},{c}&_count=2", bearer(fhir_app))
    assert mine == [a, b, c]
    other = bearer(fhir_app, user="u-other")
    assert fhir_json(client.get(f"/fhir/R4/Appointment?_id={a}", headers=other))["total"] == 0
