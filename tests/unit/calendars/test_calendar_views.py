"""The calendars' HTTP layer (booking_service/integrations/calendars/routes.py) with Flask's
test client, over the fakes of fake_services."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

import booking_service
from booking_service.integrations.calendars import routes as calendars
from booking_service.integrations.calendars.ics import (
    ICS_CONTENT_TYPE,
)
from shared.auth import issue_token
from shared.config import Config
from tests.unit.calendars.calendar_support import (
    feed_token,
    hospital,
    only_event,
    parse,
)
from tests.unit.fakes import fake_context, fake_services


def today_in_dhaka(plus: int = 0) -> str:
    return (datetime.now(ZoneInfo("Asia/Dhaka")).date() + timedelta(days=plus)).isoformat()


def make_app(**settings) -> Flask:
    """The booking service over fakes, the hospital of calendar_support published."""
    cfg = Config(bcrypt_rounds=4, reconciler_enabled=False, **settings)
    context, schedules = fake_context(cfg)
    schedules.publish(hospital())
    services = fake_services(context)
    application = booking_service.create_app(cfg, services=services, start_reconciler=False)
    assert application.extensions[calendars.FEEDS_EXTENSION] is services.feeds
    return application


@pytest.fixture
def app():
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(app, role="patient", user="p1") -> dict:
    secret = app.config["SLOTBOOK"].jwt_secret
    return {"Authorization": "Bearer " + issue_token(secret, 60, user, f"{user}@x.io", role)}


def booked(app, client, day: str | None = None, user="p1") -> str:
    made = client.post(
        "/api/appointments",
        json={
            "hospital_id": "h1",
            "date": day or today_in_dhaka(2),
            "slot": "17:00",
            "patient": {"name": "Rahim", "phone": "+8801711111111"},
        },
        headers=bearer(app, user=user),
    )
    assert made.status_code == 201, made.json
    return made.json["appointment_id"]


def error(resp, status: int, reason: str) -> dict:
    assert (resp.status_code, resp.json["error"]) == (status, reason), resp.data
    assert resp.json["code"] == status and resp.json["message"]
    return resp.json


def test_the_appointment_ics_for_its_owner_and_the_desk_only(app, client):
    aid = booked(app, client)
    path = f"/api/appointments/{aid}/calendar.ics"
    for who in (bearer(app), bearer(app, "staff", "s1"), bearer(app, "admin", "a1")):
        resp = client.get(path, headers=who)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == ICS_CONTENT_TYPE
        assert resp.headers["Cache-Control"] == "no-store"
        assert str(only_event(parse(resp.data))["UID"]) == f"{aid}@slotbook"
    error(client.get(path, headers=bearer(app, user="p2")), 404, "appointment_not_found")
    error(client.get(path), 401, "unauthorized")
    for bad in (aid.upper(), aid[:-1], aid + "0", "x" * 24, "%E0%A7%A7" * 8):
        error(
            client.get(f"/api/appointments/{bad}/calendar.ics", headers=bearer(app, "admin")),
            404,
            "appointment_not_found",
        )


def test_feeds_are_for_admins(app, client):
    error(client.post("/api/feeds", json={"hospital_id": "h1"}), 401, "unauthorized")
    for role in ("patient", "staff"):
        who = bearer(app, role)
        error(client.post("/api/feeds", json={"hospital_id": "h1"}, headers=who), 403, "forbidden")
        error(client.get("/api/feeds", headers=who), 403, "forbidden")
        error(client.delete(f"/api/feeds/{'a' * 24}", headers=who), 403, "forbidden")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"hospital_id": 7},
        {"hospital_id": ["h1"]},
        {"hospital_id": None},
        {"hospital_id": "H1"},
        {"hospital_id": "h1 "},
        {"hospital_id": "h1", "practitioner_id": 3},
        {"hospital_id": "h1", "practitioner_id": None},
        {"hospital_id": "h1", "practitioner_id": "Helal"},
        {"hospital_id": "h1", "token": "mine"},
        {"hospital_id": "h" * 65},
        [],
        "h1",
    ],
)
def test_a_feed_request_of_the_wrong_shape_is_400(app, client, body):
    error(
        client.post("/api/feeds", json=body, headers=bearer(app, "admin")), 400, "validation_error"
    )


def test_a_feed_of_an_unknown_hospital_or_doctor_is_404(app, client):
    admin = bearer(app, "admin")
    error(
        client.post("/api/feeds", json={"hospital_id": "h2"}, headers=admin),
        404,
        "hospital_not_found",
    )
    error(
        client.post(
            "/api/feeds", json={"hospital_id": "h1", "practitioner_id": "x"}, headers=admin
        ),
        404,
        "practitioner_not_found",
    )


def test_malformed_json_and_huge_bodies_are_4xx(app, client):
    admin = {**bearer(app, "admin"), "Content-Type": "application/json"}
    resp = client.post("/api/feeds", data=b'{"hospital_id": "h1"', headers=admin)
    assert resp.status_code == 400
    resp = client.post(
        "/api/feeds", data=b'{"hospital_id": "' + b"a" * 200_000 + b'"}', headers=admin
    )
    assert resp.status_code == 413


def test_a_feed_from_creation_to_revocation(app, client):
    aid = booked(app, client)
    admin = bearer(app, "admin", "a1")
    made = client.post("/api/feeds", json={"hospital_id": "h1"}, headers=admin)
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    feed = made.json
    assert feed["url"].startswith(f"/api/feeds/{feed['feed_id']}.ics?token=")
    assert (feed["hospital_id"], feed["practitioner_id"], feed["created_by"]) == ("h1", None, "a1")

    resp = client.get(feed["url"])  # no bearer token: the URL is the credential
    assert resp.status_code == 200 and resp.headers["Content-Type"] == ICS_CONTENT_TYPE
    assert resp.headers["Cache-Control"] == "private, no-cache"
    assert "X-Feed-Truncated" not in resp.headers
    assert [str(e["UID"]) for e in parse(resp.data).events] == [f"{aid}@slotbook"]
    # Other query parameters (a calendar client's own) change nothing.
    assert client.get(feed["url"] + "&_=123").data == resp.data

    listed = client.get("/api/feeds", headers=admin).json
    assert listed["total"] == 1 and listed["feeds"][0]["feed_id"] == feed["feed_id"]
    assert "url" not in listed["feeds"][0] and "token" not in str(listed)
    shown = client.get(f"/api/feeds/{feed['feed_id']}", headers=admin).json
    assert "url" not in shown and "revoked_at" not in shown

    assert client.delete(f"/api/feeds/{feed['feed_id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/feeds/{feed['feed_id']}", headers=admin).status_code == 204
    error(client.get(feed["url"]), 404, "feed_not_found")
    assert client.get("/api/feeds", headers=admin).json["total"] == 0
    assert "revoked_at" in client.get(f"/api/feeds/{feed['feed_id']}", headers=admin).json
    error(client.delete(f"/api/feeds/{'0' * 24}", headers=admin), 404, "feed_not_found")


def test_a_feed_carries_an_etag_answers_304_and_is_built_once_per_change(app, client, monkeypatch):
    """Issue 23, feeds cost once per change: ETag and Last-Modified; If-None-Match with the
    ETag is a 304 without a body; the body is built once and kept until an appointment of
    the feed changes (a cancel: its version grows), and the ETag changes with it."""
    aid = booked(app, client)
    admin = bearer(app, "admin", "a1")
    url = client.post("/api/feeds", json={"hospital_id": "h1"}, headers=admin).json["url"]
    builds = []
    build = calendars.service.feed_calendar
    monkeypatch.setattr(
        calendars.service, "feed_calendar", lambda *a, **k: builds.append(1) or build(*a, **k)
    )
    first = client.get(url)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('"') and first.headers["Last-Modified"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert (again.status_code, again.data, again.headers["ETag"]) == (304, b"", etag)
    assert again.headers["Cache-Control"] == "private, no-cache"
    assert client.get(url, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).data == first.data
    assert len(builds) == 1  # the 304s build nothing; the other fetch took the kept body
    assert client.delete(f"/api/appointments/{aid}", headers=bearer(app)).status_code == 200
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert b"STATUS:CANCELLED" in changed.data and len(builds) == 2


def test_hostile_feed_urls_are_all_the_same_404(app, client):
    made = client.post("/api/feeds", json={"hospital_id": "h1"}, headers=bearer(app, "admin"))
    feed_id, token = made.json["feed_id"], feed_token(made.json)
    urls = [
        f"/api/feeds/{feed_id}.ics",
        f"/api/feeds/{feed_id}.ics?token=",
        f"/api/feeds/{feed_id}.ics?token={token}&token={token}",
        f"/api/feeds/{feed_id}.ics?token={token[:-1]}",
        f"/api/feeds/{feed_id}.ics?token={token}x",
        f"/api/feeds/{feed_id}.ics?token={token[:-1]}%C3%A9",
        f"/api/feeds/{feed_id}.ics?token={token[:-1]}%00",
        f"/api/feeds/{feed_id}.ics?token={token[:-1]}%FF",
        f"/api/feeds/{feed_id}.ics?TOKEN={token}",
        f"/api/feeds/{feed_id.upper()}.ics?token={token}",
        f"/api/feeds/{feed_id[:-1]}.ics?token={token}",
        f"/api/feeds/{feed_id}0.ics?token={token}",
        f"/api/feeds/{feed_id}.ics.ics?token={token}",
        f"/api/feeds/{feed_id}.ICS?token={token}",
        f"/api/feeds/%20{feed_id}.ics?token={token}",
        f"/api/feeds/{'0' * 24}.ics?token={token}",
    ]
    for url in urls:
        resp = client.get(url)
        assert (resp.status_code, resp.json["error"]) == (404, "feed_not_found"), url
        assert token not in resp.get_data(as_text=True)
    # With a bearer token instead: still the URL alone decides.
    error(
        client.get(f"/api/feeds/{feed_id}.ics", headers=bearer(app, "admin")), 404, "feed_not_found"
    )


def test_feed_listing_pages_are_checked(app, client):
    admin = bearer(app, "admin")
    for query in ("page=0", "per_page=501", "page=١", "page=1_0", "hospital_id=H1"):
        error(client.get(f"/api/feeds?{query}", headers=admin), 400, "validation_error")


def test_a_public_base_url_makes_feed_urls_absolute():
    application = make_app(feeds_base_url="https://api.example.org/")
    made = application.test_client().post(
        "/api/feeds", json={"hospital_id": "h1"}, headers=bearer(application, "admin")
    )
    assert made.json["url"].startswith(f"https://api.example.org/api/feeds/{made.json['feed_id']}")


@pytest.mark.parametrize(
    "value",
    ["api.example.org", "ftp://x", "https://x/?a=1", "https://x/#f", "https://u@x", "https:// x"],
)
def test_a_malformed_base_url_is_a_startup_error(value):
    with pytest.raises(ValueError, match="FEEDS_BASE_URL"):
        calendars.feeds_base_url(value)


def test_the_openapi_document_lists_the_calendar_operations(app):
    paths = app.test_client().get("/openapi.json").json["paths"]
    assert set(paths["/api/appointments/{appointment_id}/calendar.ics"]) >= {"get"}
    assert set(paths["/api/feeds"]) >= {"get", "post"}
    assert set(paths["/api/feeds/{feed_id}"]) >= {"get", "delete"}
    feed = paths["/api/feeds/{feed_id}.ics"]["get"]
    assert "text/calendar" in feed["responses"]["200"]["content"]
    assert any(p["name"] == "token" and p["in"] == "query" for p in feed["parameters"])


def test_concurrent_fetches_of_a_changed_feed_share_one_build():
    """One build of a feed at a time: the fetches that arrive meanwhile wait and share it."""
    builds = calendars.service.FeedBuilds(size=2)
    started, made = threading.Event(), []

    def make():
        made.append(1)
        started.set()
        time.sleep(0.2)
        return calendars.service.FeedAnswer(b"body", 1, False, "e1")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: builds.build("f1", "e1", make), range(8)))
    assert len(made) == 1 and {a.body for a in answers} == {b"body"}
    # another ETag builds anew; past `size` feeds the oldest is forgotten
    builds.build("f1", "e2", make)
    assert len(made) == 2
    for feed in ("f2", "f3"):
        builds.build(feed, "e1", make)
    builds.build("f1", "e1", make)
    assert len(made) == 5
