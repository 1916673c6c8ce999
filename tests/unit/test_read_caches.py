"""The caches of the hot read and booking paths: what they keep, and that answers stay the same.

- shared/slots.py: a Schedule's dates (per version and date) and slot start instants;
- shared/availability.py: day_json / counts_json, the same bytes as json_response of the
  dict documents the services answered with before (day_view / counts_view below), and
  their cache of slot parts;
- shared/counts.py: parsed counts by raw reply (the counts themselves are read every time);
- shared/auth.py: verified tokens (time limits checked on every use);
- shared/clients.py: LuaScript over a Redis that forgot its scripts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

import jwt
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import auth, counts, keys, slots
from shared.auth import ISSUER, issue_token, verify_token
from shared.availability import LIVE, UNKNOWN, counts_json, day_json
from shared.clients import LuaScript, execute
from shared.errors import Unauthorized
from shared.slots import BEYOND_WINDOW, CLOSED, OPEN, PAST, Day, Slot, compile_schedule

SAT = date(2026, 11, 28)
SECRET = "unit-test-secret-" + "0123456789abcdef" * 4


def as_json(document: dict, lead: dict | None = None) -> str:
    """What shared.web.json_response writes."""
    return json.dumps({**(lead or {}), **document}, separators=(",", ":"), ensure_ascii=False)


# The documents as dicts, as the services built them before shared.availability wrote JSON text:
# the reference the writers are held to, byte for byte.


def day_view(day: Day, booked: Mapping[str, int] | None) -> dict:
    """A day as `available` and `calendar` show it; `booked` None means counts unknown."""
    slots = []
    total_capacity = total_booked = total_available = 0
    known = booked is not None
    for slot, started in zip(day.slots, day.started, strict=True):
        count = booked.get(slot.start, 0) if known else None
        available = max(0, slot.capacity - count) if known else None
        slots.append(
            {
                "start": slot.start,
                "end": slot.end,
                "display": slot.display,
                "capacity": slot.capacity,
                "booked": count,
                "available": available,
                "bookable": not started and (available is None or available > 0),
            }
        )
        total_capacity += slot.capacity
        if known:
            total_booked += count
            total_available += available
    view = {
        "date": day.iso,
        "weekday": day.weekday,
        "status": day.status,
        "slots": slots,
        "total_capacity": total_capacity,
        "total_booked": total_booked if known else None,
        "total_available": total_available if known else None,
        "counts": LIVE if known else UNKNOWN,
    }
    if day.reason:
        view["reason"] = day.reason
    return view


def counts_view(day: Day, booked: Mapping[str, int] | None) -> dict:
    """A day as the lightweight `availability` answer shows it."""
    slots = {}
    total = 0
    known = booked is not None
    if day.status == OPEN:
        for slot in day.slots:
            count = booked.get(slot.start, 0) if known else None
            slots[slot.start] = {
                "capacity": slot.capacity,
                "booked": count,
                "available": max(0, slot.capacity - count) if known else None,
            }
            if known:
                total += count
    view = {
        "slots": slots,
        "total_booked": total if known else None,
        "status": day.status,
        "counts": LIVE if known else UNKNOWN,
    }
    if day.reason:
        view["reason"] = day.reason
    return view


def hospital(**changes) -> dict:
    doc = {
        "hospital_id": "h",
        "timezone": "Asia/Dhaka",
        "version": 1,
        "schedule": {"6": {"slots": [{"start": "17:00", "end": "18:00"}]}},
        "max_appointments_per_slot": 3,
        "advance_booking_days": 10,
        "date_overrides": {},
    }
    doc.update(changes)
    return doc


# --- day_json / counts_json: the documents, byte for byte -----------------------------------

TEXTS = st.text(alphabet=st.characters(codec="utf-8"), max_size=8)


@st.composite
def days_and_counts(draw):
    n = draw(st.integers(0, 6))
    day_slots = tuple(
        Slot(f"{h:02d}:00", f"{h:02d}:30", draw(TEXTS), draw(st.integers(1, 20))) for h in range(n)
    )
    status = OPEN if n else draw(st.sampled_from([CLOSED, PAST, BEYOND_WINDOW]))
    cut = draw(st.integers(0, n))
    started = (True,) * cut + (False,) * (n - cut)
    reason = draw(st.none() | TEXTS) if status == CLOSED else None
    day = Day(SAT, 6, status, reason, day_slots, started, override=draw(st.booleans()))
    starts = st.sampled_from([s.start for s in day_slots] or ["00:00"])
    booked = draw(st.none() | st.dictionaries(starts, st.integers(0, 40)))
    if booked is not None and draw(st.booleans()):
        booked = MappingProxyType(booked)  # as shared.counts gives them: cached
    return day, booked


@settings(max_examples=300, deadline=None)
@given(days_and_counts(), st.none() | TEXTS)
def test_property_json_text_is_the_documents_bytes(scenario, hospital_id):
    day, booked = scenario
    lead = {} if hospital_id is None else {"hospital_id": hospital_id}
    lead_json = as_json(lead)[1:-1] + "," if lead else ""
    for _ in range(2):  # the second time from the cache
        assert day_json(day, booked, lead_json) == as_json(day_view(day, booked), lead)
        assert counts_json(day, booked, lead_json) == as_json(counts_view(day, booked), lead)


def test_cached_parts_follow_the_counts_and_started_flags():
    day_slots = (Slot("17:00", "18:00", "x", 2), Slot("18:00", "19:00", "y", 2))
    day = Day(SAT, 6, OPEN, None, day_slots, (False, False))
    one, two = MappingProxyType({"17:00": 1}), MappingProxyType({"17:00": 2})
    for booked in (one, two, one, None, two):
        assert day_json(day, booked) == as_json(day_view(day, booked))
        assert counts_json(day, booked) == as_json(counts_view(day, booked))
    # today, once the first slot has started: same slots, other flags
    today = Day(SAT, 6, OPEN, None, day_slots, (True, False))
    assert json.loads(day_json(today, one))["slots"][0]["bookable"] is False
    assert json.loads(day_json(day, one))["slots"][0]["bookable"] is True


def test_mutable_counts_are_never_cached():
    day = Day(SAT, 6, OPEN, None, (Slot("17:00", "18:00", "x", 5),), (False,))
    booked = {"17:00": 1}
    assert json.loads(day_json(day, booked))["total_booked"] == 1
    booked["17:00"] = 4
    assert json.loads(day_json(day, booked))["total_booked"] == 4
    assert json.loads(counts_json(day, booked))["total_booked"] == 4


def test_a_new_version_renders_its_own_slots():
    """Parts are cached by the slots of one compiled version: the next version's show."""
    now = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    booked = MappingProxyType({"17:00": 1})
    v1 = compile_schedule(hospital())
    v2 = compile_schedule(hospital(version=2, max_appointments_per_slot=9))
    assert json.loads(day_json(v1.day(SAT, now), booked))["total_available"] == 2
    assert json.loads(day_json(v2.day(SAT, now), booked))["total_available"] == 8
    assert json.loads(counts_json(v2.day(SAT, now), booked))["slots"]["17:00"]["capacity"] == 9


# --- a Schedule's cached dates: time-dependent answers stay right at every instant ----------


def test_dates_of_the_window_are_built_once_per_version():
    schedule = compile_schedule(hospital())
    now = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    first = schedule.day(SAT, now)
    assert schedule.day(SAT, now) is first
    assert schedule.days(SAT, 1, now)[0] is first
    assert schedule.expand([SAT], now)[0] is first
    assert compile_schedule(hospital(version=2)).day(SAT, now) is not first


def test_status_and_started_flags_follow_the_clock_on_one_schedule():
    schedule = compile_schedule(hospital())  # Saturdays 17:00-18:00 in Dhaka (UTC+6)

    def at(*hms):
        return datetime(2026, 11, 28, *hms, tzinfo=UTC)

    before = datetime(2026, 11, 17, 4, 0, tzinfo=UTC)  # 11 days ahead: beyond the window
    assert schedule.day(SAT, before).status == BEYOND_WINDOW
    assert schedule.day(SAT, before + timedelta(days=1)).status == OPEN
    assert schedule.day(SAT, at(10, 59, 59)).started == (False,)  # 16:59:59 in Dhaka
    assert schedule.day(SAT, at(11, 0)).started == (True,)
    assert schedule.day(SAT, at(10, 59, 59)).started == (False,)  # the cached date is intact
    assert schedule.day(SAT, at(18, 0)).status == PAST  # midnight in Dhaka
    assert schedule.days(SAT - timedelta(days=1), 3, at(11, 0))[1].started == (True,)
    assert schedule.day(SAT + timedelta(days=7), at(11, 0)).started == (False,)


def test_the_cache_of_dates_is_bounded(monkeypatch):
    monkeypatch.setattr(slots, "_MAX_PLANNED_DATES", 5)
    schedule = compile_schedule(hospital(advance_booking_days=366))
    now = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    days = schedule.days(date(2026, 11, 24), 40, now)
    assert len(schedule._planned) <= 5
    assert [d.date for d in days] == [date(2026, 11, 24) + timedelta(days=i) for i in range(40)]
    assert [d.status for d in days] == [d.status for d in schedule.days(days[0].date, 40, now)]


# --- parsed counts --------------------------------------------------------------------------


@pytest.fixture
def replies(monkeypatch):
    """read_day_counts over canned replies: (extras, epoch, raw day hashes)."""
    canned = {}

    def fake_fetch(client, days_keys, extra):
        return canned["extras"], canned["epoch"], canned["hashes"]

    monkeypatch.setattr(counts, "_fetch", fake_fetch)
    return canned


def test_counts_are_read_every_time_and_parsed_once(replies):
    replies.update(extras=[b"1"], epoch=b"1", hashes=[[b"17:00", b"2", b"_ready", b"1"], []])
    first, extras = counts.read_day_counts(None, "h", ["2026-11-28", "2026-11-29"], ["k"])
    assert extras == [b"1"]
    assert first == {"2026-11-28": {"17:00": 2}, "2026-11-29": {}}
    with pytest.raises(TypeError):
        first["2026-11-28"]["17:00"] = 3  # shared: read-only
    replies["hashes"] = [[b"17:00", b"2", b"_ready", b"1"], [b"18:00", b"1"]]
    again, _ = counts.read_day_counts(None, "h", ["2026-11-28", "2026-11-29"], ["k"])
    assert again["2026-11-28"] is first["2026-11-28"]
    assert again["2026-11-29"] == {"18:00": 1}  # a new reply, new counts
    replies["hashes"] = [[b"17:00", b"3", b"_ready", b"1"], []]
    assert counts.read_day_counts(None, "h", ["2026-11-28", "x"])[0]["2026-11-28"] == {"17:00": 3}


def test_without_the_epoch_only_rebuilt_days_are_known(replies):
    rebuilt, other = [b"17:00", b"2", b"_ready", b"1"], [b"17:00", b"2"]
    replies.update(extras=[], epoch=None, hashes=[rebuilt, other, []])
    got, _ = counts.read_day_counts(None, "h", ["a", "b", "c"])
    assert got == {"a": {"17:00": 2}, "b": None, "c": None}
    replies["epoch"] = b"1"  # the same reply, now vouched for by the epoch
    assert counts.read_day_counts(None, "h", ["a", "b", "c"])[0]["b"] == {"17:00": 2}


def test_cluster_replies_are_parsed_alike(replies):
    replies.update(extras=[], epoch=b"1", hashes=[{b"17:00": b"4", b"_ready": b"1"}])
    assert counts.read_day_counts(None, "h", ["a"])[0] == {"a": {"17:00": 4}}


def test_the_parse_cache_is_bounded(replies, monkeypatch):
    monkeypatch.setattr(counts, "_MAX_PARSED", 3)
    for n in range(10):
        replies.update(extras=[], epoch=b"1", hashes=[[b"17:00", str(n).encode()]])
        assert counts.read_day_counts(None, "h", ["a"])[0]["a"] == {"17:00": n}
    assert len(counts._PARSED) <= 3


# --- verified tokens ------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """shared.auth's and PyJWT's clock, settable."""
    now = {"t": time.time()}

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(now["t"], tz)

    monkeypatch.setattr(auth.time, "time", lambda: now["t"])
    monkeypatch.setattr(jwt.api_jwt, "datetime", FakeDatetime)
    return now


def test_a_cached_token_still_expires(clock):
    token = issue_token(SECRET, 60, "u1", "a@example.com", "patient")
    assert verify_token(SECRET, token).user_id == "u1"
    assert (SECRET, token) in auth._verified
    clock["t"] += 30
    assert verify_token(SECRET, token).user_id == "u1"
    clock["t"] += 31
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(SECRET, token)


def test_a_cached_token_is_valid_only_with_its_secret():
    token = issue_token(SECRET, 60, "u1", "a@example.com", "admin")
    assert verify_token(SECRET, token).is_admin
    with pytest.raises(Unauthorized):
        verify_token("another-secret-" + "0123456789abcdef" * 4, token)


def test_a_token_not_yet_valid_is_refused_until_it_is(clock):
    issued = int(clock["t"]) + 120
    claims = {"sub": "u1", "role": "admin", "iat": issued, "nbf": issued, "exp": issued + 60}
    token = jwt.encode({**claims, "iss": ISSUER}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        verify_token(SECRET, token)
    clock["t"] = issued
    assert verify_token(SECRET, token).user_id == "u1"
    clock["t"] = issued - 1  # the clock went back: not valid yet again
    with pytest.raises(Unauthorized):
        verify_token(SECRET, token)


def test_the_token_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(auth, "_MAX_VERIFIED", 3)
    for n in range(10):
        verify_token(SECRET, issue_token(SECRET, 60, f"u{n}", "e", "patient"))
    assert len(auth._verified) <= 3


# --- Lua scripts over the pool's connections ------------------------------------------------


def test_a_script_is_loaded_again_after_redis_forgot_it(redis_url):
    client = redis.Redis.from_url(redis_url)
    script = LuaScript("return {KEYS[1], ARGV[1]}")
    key = keys.rate_key("unit", "lua")
    assert script(client, [key], [7]) == [key.encode(), b"7"]
    execute(client, "SCRIPT", "FLUSH")
    assert script(client, [key], ["x"]) == [key.encode(), b"x"]
    with pytest.raises(redis.ResponseError):
        LuaScript("return redis.call('NOPE')")(client, [], [])
    assert execute(client, "GET", key) is None  # the connection is still usable
    client.close()


# --- request and response layers of the hot paths -------------------------------------------


@pytest.mark.parametrize(
    "value",
    [["2026-11-28", "x"], [], "2026-11-28", None, 5, {"a": 1}, ["a", 1, None, ["b"]], ("a",)],
)
def test_texts_reads_as_a_list_of_strings_does(value):
    import marshmallow as ma

    from booking_service.schemas import Texts

    def load(field):
        schema = ma.Schema.from_dict({"dates": field})()
        try:
            return schema.load({"dates": value})
        except ma.ValidationError as error:
            return error.messages

    assert load(Texts(required=True)) == load(ma.fields.List(ma.fields.Str(), required=True))


def test_alt_responses_are_documented_without_wrappers():
    from flask.views import MethodView

    from shared.config import Config
    from shared.schemas import ApiErrorSchema
    from shared.web import SlotbookBlueprint, create_base_app, json_response

    app, api = create_base_app("probe_service", "Probe", Config())
    blp = SlotbookBlueprint("probe", __name__, url_prefix="/probe")

    @blp.route("")
    class Probe(MethodView):
        @blp.response(200)
        @blp.alt_response(404, schema=ApiErrorSchema)
        @blp.alt_response(409, schema=ApiErrorSchema)
        def get(self):
            """Probe."""
            return json_response({"ok": True})

    assert not hasattr(Probe.get.__wrapped__, "__wrapped__")  # only `response` wraps the view
    api.register_blueprint(blp)
    responses = api.spec.to_dict()["paths"]["/probe"]["get"]["responses"]
    assert set(responses) == {"200", "404", "409", "default"}
    assert app.test_client().get("/probe").get_json() == {"ok": True}
