"""iCalendar through the gateway, against the real services (API.md, "Integrations"): an
appointment's `.ics` through booking, reschedule and cancel (one UID, a growing SEQUENCE), in
a zone with daylight saving time too; feed URLs made by an admin, read with their secret
alone, revoked; and hostile requests, none of which gets a 5xx."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from bson import ObjectId
from icalendar import Calendar
from pymongo import MongoClient

from tests.helpers import (
    Api,
    assert_error_shape,
    booking,
    create_hospital,
    hospital_doc,
    next_weekday,
    publish_hospital,
)

pytestmark = pytest.mark.e2e

ICS = "text/calendar; charset=utf-8"
NY = "America/New_York"


@pytest.fixture(scope="module")
def db(mongo_url, mongo_db_name):
    client = MongoClient(mongo_url, tz_aware=True)
    yield client[mongo_db_name]
    client.close()


def ics_of(client: Api, appointment_id: str):
    """The appointment's only event, from its `.ics` (checked as the contract says)."""
    resp = client.get(f"/api/appointments/{appointment_id}/calendar.ics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == ICS
    assert resp.headers["Cache-Control"] == "no-store"
    calendar = Calendar.from_ical(resp.content)
    (event,) = calendar.events
    tzid = event["DTSTART"].params["TZID"]
    assert tzid in [str(tz["TZID"]) for tz in calendar.timezones]
    return event


def book(client: Api, hid: str, day, slot: str, **more) -> str:
    resp = client.post("/api/appointments", {**booking(hid, day, slot), **more})
    assert resp.status_code == 201, resp.text
    return resp.json()["appointment_id"]


def make_feed(admin: Api, **body) -> dict:
    resp = admin.post("/api/feeds", body)
    assert resp.status_code == 201, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.json()


def token_of(feed: dict) -> str:
    return feed["url"].split("?token=", 1)[1]


def uids(resp) -> dict[str, str]:
    """UID -> STATUS of a feed's answer."""
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == ICS
    return {str(e["UID"]): str(e["STATUS"]) for e in Calendar.from_ical(resp.content).events}


# --- One appointment ------------------------------------------------------------------------


def test_book_reschedule_cancel_one_uid_a_growing_sequence(gateway, admin, patient):
    hid, day = create_hospital(admin, 5), next_weekday(6)
    aid = book(patient, hid, day, "10:00")
    dhaka = ZoneInfo("Asia/Dhaka")

    booked = ics_of(patient, aid)
    assert str(booked["UID"]) == f"{aid}@slotbook"
    assert (booked["SEQUENCE"], str(booked["STATUS"])) == (1, "CONFIRMED")
    assert booked["DTSTART"].params["TZID"] == "Asia/Dhaka"
    assert booked.start == datetime(day.year, day.month, day.day, 10, 0, tzinfo=dhaka)
    assert booked.end == datetime(day.year, day.month, day.day, 11, 0, tzinfo=dhaka)

    later = day + timedelta(days=1)
    moved = patient.post(
        f"/api/appointments/{aid}/reschedule", {"date": str(later), "slot": "11:00"}
    )
    assert moved.status_code == 200, moved.text
    after = ics_of(patient, aid)
    assert after["UID"] == booked["UID"] and after["SEQUENCE"] > booked["SEQUENCE"]
    assert after.start == datetime(later.year, later.month, later.day, 11, 0, tzinfo=dhaka)
    assert str(after["STATUS"]) == "CONFIRMED"

    assert patient.delete(f"/api/appointments/{aid}").status_code == 200
    gone = ics_of(patient, aid)
    assert gone["UID"] == booked["UID"] and gone["SEQUENCE"] > after["SEQUENCE"]
    assert str(gone["STATUS"]) == "CANCELLED"
    # The desk sees the same event.
    assert ics_of(admin, aid).to_ical() == gone.to_ical()


def test_only_its_owner_and_the_desk_get_the_ics(gateway, admin, patient):
    hid = create_hospital(admin, 5)
    aid = book(patient, hid, next_weekday(6), "09:00")
    path = f"/api/appointments/{aid}/calendar.ics"
    assert_error_shape(gateway.new_patient().get(path), 404, "appointment_not_found")
    assert_error_shape(gateway.get(path), 401, "unauthorized")
    for almost in (aid.upper(), aid[:-1], aid + "0", "g" * 24, quote("০") * 24):
        assert_error_shape(
            admin.get(f"/api/appointments/{almost}/calendar.ics"), 404, "appointment_not_found"
        )


def test_a_hospital_with_daylight_saving_time_writes_its_zone(gateway, admin, patient):
    hid = publish_hospital(admin, hospital_doc(timezone=NY))["hospital_id"]
    day = next_weekday(6, tz=NY)
    event = ics_of(patient, book(patient, hid, day, "11:00"))
    assert event["DTSTART"].params["TZID"] == NY
    local = datetime(day.year, day.month, day.day, 11, 0, tzinfo=ZoneInfo(NY))
    assert event.start.astimezone(UTC) == local.astimezone(UTC)
    assert event.start.utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))


# --- Feeds ----------------------------------------------------------------------------------


def test_a_feed_from_creation_to_revocation(gateway, admin, patient, db):
    hid, day = create_hospital(admin, 5), next_weekday(6)
    kept = book(patient, hid, day, "09:00")
    cancelled = book(gateway.new_patient(), hid, day + timedelta(days=1), "10:00")
    assert admin.delete(f"/api/appointments/{cancelled}").status_code == 200

    feed = make_feed(admin, hospital_id=hid)
    assert feed["hospital_id"] == hid and feed["practitioner_id"] is None
    assert feed["url"].startswith(f"/api/feeds/{feed['feed_id']}.ics?token=")
    token = token_of(feed)

    # No bearer token: the URL is the credential.
    answer = gateway.get(feed["url"])
    assert answer.headers["Cache-Control"] == "private, no-cache"  # no shared cache keeps it
    same = gateway.get(feed["url"], headers={"If-None-Match": answer.headers["ETag"]})
    assert (same.status_code, same.content) == (304, b"")  # through the gateway too
    assert uids(answer) == {f"{kept}@slotbook": "CONFIRMED", f"{cancelled}@slotbook": "CANCELLED"}

    # The secret is stored only as its SHA-256.
    stored = db.feeds.find_one({"_id": ObjectId(feed["feed_id"])})
    assert stored["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(stored)
    assert not any(token in repr(doc) for doc in db.feeds.find())

    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    for url in (
        f"/api/feeds/{feed['feed_id']}.ics?token={wrong}",
        f"/api/feeds/{feed['feed_id']}.ics",
        f"/api/feeds/{feed['feed_id']}.ics?token={token}&token={token}",
    ):
        assert_error_shape(gateway.get(url), 404, "feed_not_found")

    listed = admin.get(f"/api/feeds?hospital_id={hid}")
    assert listed.status_code == 200 and [f["feed_id"] for f in listed.json()["feeds"]] == [
        feed["feed_id"]
    ]
    assert listed.json()["total"] == 1  # (nx-27017 used to count 0: a `None` filter)
    assert token not in listed.text

    assert admin.delete(f"/api/feeds/{feed['feed_id']}").status_code == 204
    assert admin.delete(f"/api/feeds/{feed['feed_id']}").status_code == 204  # idempotent
    assert_error_shape(gateway.get(feed["url"]), 404, "feed_not_found")
    assert db.feeds.find_one({"_id": ObjectId(feed["feed_id"])})["token_sha256"] is None
    assert admin.get(f"/api/feeds?hospital_id={hid}").json()["total"] == 0


def test_a_doctors_feed_has_only_that_doctors_appointments(gateway, admin, patient):
    doc = hospital_doc(practitioners={"helal": {"name": "Dr. Helal Uddin"}})
    hid, day = publish_hospital(admin, doc)["hospital_id"], next_weekday(6)
    his = book(patient, hid, day, "09:00", practitioner_id="helal")
    hospitals = book(gateway.new_patient(), hid, day, "09:00")

    feed = make_feed(admin, hospital_id=hid, practitioner_id="helal")
    answer = gateway.get(feed["url"])
    assert uids(answer) == {f"{his}@slotbook": "CONFIRMED"}
    assert "Dr. Helal Uddin" in Calendar.from_ical(answer.content)["X-WR-CALNAME"]
    whole = make_feed(admin, hospital_id=hid)
    assert set(uids(gateway.get(whole["url"]))) == {f"{his}@slotbook", f"{hospitals}@slotbook"}

    assert_error_shape(
        admin.post("/api/feeds", {"hospital_id": hid, "practitioner_id": "nobody"}),
        404,
        "practitioner_not_found",
    )
    assert_error_shape(
        admin.post("/api/feeds", {"hospital_id": "no-such-hospital"}), 404, "hospital_not_found"
    )


def test_only_admins_make_and_revoke_feeds(gateway, admin, patient):
    hid = create_hospital(admin, 5)
    assert_error_shape(patient.post("/api/feeds", {"hospital_id": hid}), 403, "forbidden")
    assert_error_shape(gateway.post("/api/feeds", {"hospital_id": hid}), 401, "unauthorized")
    assert_error_shape(patient.get("/api/feeds"), 403, "forbidden")
    feed = make_feed(admin, hospital_id=hid)
    assert_error_shape(patient.delete(f"/api/feeds/{feed['feed_id']}"), 403, "forbidden")
    assert_error_shape(gateway.delete(f"/api/feeds/{feed['feed_id']}"), 401, "unauthorized")
    assert gateway.get(feed["url"]).status_code == 200  # still live


@pytest.mark.parametrize(
    "body",
    [
        {"hospital_id": 1},
        {"hospital_id": ["gomoti"]},
        {"hospital_id": {"$ne": None}},
        {"hospital_id": "Gomoti"},
        {"hospital_id": "gomoti\n"},
        {"hospital_id": "gomoti", "practitioner_id": True},
        {"hospital_id": "gomoti", "extra": 1},
        {},
        [],
    ],
)
def test_a_feed_body_of_the_wrong_shape_is_400(admin, body):
    assert_error_shape(admin.post("/api/feeds", body), 400, "validation_error")


def test_hostile_feed_requests_are_4xx_never_5xx(gateway, admin):
    feed = make_feed(admin, hospital_id=create_hospital(admin, 5))
    fid, token = feed["feed_id"], token_of(feed)
    urls = [
        f"/api/feeds/{fid.upper()}.ics?token={token}",
        f"/api/feeds/{fid[:-1]}.ics?token={token}",
        f"/api/feeds/{fid}0.ics?token={token}",
        f"/api/feeds/{fid}.ics.ics?token={token}",
        f"/api/feeds/{fid}.ics?token={token[:-1]}",
        f"/api/feeds/{fid}.ics?token={token}A",
        f"/api/feeds/{fid}.ics?token={token[:-1]}%C3%A9",
        f"/api/feeds/{fid}.ics?token={token[:-1]}%00",
        f"/api/feeds/{fid}.ics?token={quote('০১২৩৪৫৬৭৮৯') * 5}",
        f"/api/feeds/{fid}.ics?token=" + "A" * 4000,
        f"/api/feeds/{'0' * 24}.ics?token={token}",
        f"/api/feeds/{quote('০') * 24}.ics?token={token}",
    ]
    for url in urls:
        resp = gateway.get(url)
        assert_error_shape(resp, 404, "feed_not_found")
        assert token not in resp.text
    # A body over the gateway's limit never reaches the service.
    huge = admin.post("/api/feeds", {"hospital_id": "a" * 100_000})
    assert_error_shape(huge, 413)
    assert_error_shape(admin.delete(f"/api/feeds/{'0' * 24}"), 404, "feed_not_found")
    assert_error_shape(admin.delete(f"/api/feeds/{fid}x"), 404, "feed_not_found")
    assert gateway.get(feed["url"]).status_code == 200
