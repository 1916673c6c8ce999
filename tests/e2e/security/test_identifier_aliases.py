"""Attack: name a hospital or an appointment by an id that is almost its id.

Before: the booking service put the body's `hospital_id` unquoted into its URL to the
schedule service, which resolved `gomoti/`, `gomoti?x`, `./gomoti`... to Gomoti; the
booking was then confirmed against capacity records keyed by the alias, so any patient could
overbook any slot without limit, unseen by the counts and the admin's day sheet. Reads
answered the aliases with zero bookings. Now every id must be canonical
(`^[a-z0-9][a-z0-9_-]{0,63}$`; appointments: 24 lowercase hex) before anything is built
from it: in a body or query 400 validation_error, in a path 404.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.helpers import (
    assert_error_shape,
    booking,
    create_hospital,
    next_weekday,
)

CAPACITY = 2


def aliases(hid: str) -> list[str]:
    """Ids that are not `hid` but that a lax parser, URL or database might take for it."""
    return [
        f"{hid}/",
        f"{hid}?x=1",
        f"{hid}#frag",
        f"./{hid}",
        f"../hospitals/{hid}",
        f"{hid}/.",
        f"{hid}%2F",
        f"{hid}/history",
        hid.upper(),
        f" {hid}",
        f"{hid} ",
        f"{hid}\n",
        f"{hid}\t",
        f"{hid}\x00",
        f"{hid}\u0307",
        "../../../healthz",
        "..",
        "",
        "-" + hid,
        "a" * 65,
    ]


def test_a_booking_for_an_alias_is_refused_and_the_slot_never_overbooks(admin, patient):
    hid = create_hospital(admin, CAPACITY)
    day = next_weekday(3)
    for i, alias in enumerate(aliases(hid)):
        resp = patient.post(
            "/api/appointments", booking(alias, day, "09:00", f"+88017100000{i:02d}")
        )
        body = assert_error_shape(resp, 400, "validation_error")
        assert "hospital_id" in body["errors"], (alias, body)
    for i in range(CAPACITY + 2):
        patient.post("/api/appointments", booking(hid, day, "09:00", f"+88017200000{i:02d}"))
    mine = admin.get("/api/appointments", params={"hospital_id": hid, "date": str(day)}).json()
    assert mine["total"] == CAPACITY
    counts = admin.get(f"/api/availability/{hid}/{day}").json()
    assert counts["slots"]["09:00"]["booked"] == CAPACITY
    # Nothing was written under any other spelling of the hospital.
    everyone = admin.get("/api/appointments", params={"date": str(day), "per_page": 500}).json()
    names = {a["hospital_id"] for a in everyone["appointments"]}
    assert {name for name in names if hid in name} == {hid}


@pytest.mark.parametrize(
    "path",
    [
        "/api/availability/{alias}/{day}",
        "/api/dynamic-slots/available/{alias}/{day}",
        "/api/dynamic-slots/calendar/{alias}",
        "/api/dynamic-slots/hospitals/{alias}",
    ],
)
def test_reads_never_answer_for_an_alias(gateway, admin, path):
    hid = create_hospital(admin, CAPACITY)
    day = next_weekday(3)
    for alias in aliases(hid):
        if not alias or alias in ("..",) or "/" in alias:
            continue  # another path altogether: routing answers those (404 below)
        url = path.format(alias=quote(alias, safe=""), day=day)
        resp = gateway.get(url)
        assert resp.status_code == 404, (alias, resp.status_code, resp.text[:200])
        assert_error_shape(resp, 404)
    # Percent-encoded as a client may send them (a decoded %2F is a slash: no second
    # spelling of a path either, as slashes are not merged).
    for alias in (f"{hid}%2F", f"{hid}%3Fx", f"{hid}%0A", f"{hid}%20", f"%2E%2F{hid}"):
        resp = gateway.get(path.format(alias=alias, day=day))
        assert resp.status_code == 404, (alias, resp.status_code, resp.text[:200])


def test_bulk_and_admin_filters_refuse_aliases(admin):
    hid = create_hospital(admin, CAPACITY)
    day = str(next_weekday(3))
    for alias in aliases(hid):
        bulk = admin.post("/api/availability/bulk", {"hospital_id": alias, "dates": [day]})
        assert_error_shape(bulk, 400, "validation_error")
        listed = admin.get("/api/appointments", params={"hospital_id": alias})
        assert_error_shape(listed, 400, "validation_error")


def test_an_appointment_id_has_one_spelling(admin, patient):
    hid = create_hospital(admin, CAPACITY)
    created = patient.post("/api/appointments", booking(hid, next_weekday(3), "10:00"))
    assert created.status_code == 201, created.text
    aid = created.json()["appointment_id"]
    assert patient.get(f"/api/appointments/{aid}").status_code == 200
    for alias in (aid.upper(), aid + "%20", "%20" + aid, aid[:-1] + "G", aid + "00", aid[:12]):
        for method in (patient.get, patient.delete):
            resp = method(f"/api/appointments/{alias}")
            assert_error_shape(resp, 404, "appointment_not_found")
    assert patient.get(f"/api/appointments/{aid}").json()["status"] == "confirmed"
