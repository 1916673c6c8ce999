"""shared/answers.py: a day's slots merged with its booking counts (the documents, written as
the answers write them and read back)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.answers import counts_document, day_document
from shared.slots import CLOSED, OPEN, Day, Slot, compile_schedule

SAT = date(2026, 11, 28)


def day_view(day: Day, booked: Mapping[str, int] | None) -> dict:
    """The document `available` and `calendar` answer with for `day`."""
    return json.loads(orjson.dumps(day_document(day, booked)))


def counts_view(day: Day, booked: Mapping[str, int] | None) -> dict:
    """The document the `availability` answers give for `day`."""
    return json.loads(orjson.dumps(counts_document(day, booked)))


def slot(start: str, end: str, capacity: int) -> Slot:
    return Slot(start=start, end=end, display=f"{start}-{end}", capacity=capacity)


SLOTS = (slot("17:00", "18:00", 5), slot("18:00", "19:00", 3), slot("19:00", "20:00", 4))


def open_day(started=(False, False, False), slots=SLOTS) -> Day:
    return Day(SAT, 6, OPEN, None, slots, tuple(started))


def test_day_view_merges_counts():
    view = day_view(open_day(), {"17:00": 2, "18:00": 3})
    assert view["date"] == "2026-11-28"
    assert view["weekday"] == 6
    assert view["status"] == OPEN
    assert view["counts"] == "live"
    assert "reason" not in view
    assert view["slots"] == [
        {
            "start": "17:00",
            "end": "18:00",
            "display": "17:00-18:00",
            "capacity": 5,
            "booked": 2,
            "held": 0,
            "available": 3,
            "bookable": True,
        },
        {
            "start": "18:00",
            "end": "19:00",
            "display": "18:00-19:00",
            "capacity": 3,
            "booked": 3,
            "held": 0,
            "available": 0,
            "bookable": False,
        },
        {
            "start": "19:00",
            "end": "20:00",
            "display": "19:00-20:00",
            "capacity": 4,
            "booked": 0,
            "held": 0,
            "available": 4,
            "bookable": True,
        },
    ]
    assert (view["total_capacity"], view["total_booked"], view["total_available"]) == (12, 5, 7)


def test_overbooked_slot_never_negative():
    # Capacity lowered to 3 after 7 were booked.
    view = day_view(open_day(), {"18:00": 7})
    overbooked = view["slots"][1]
    assert overbooked["booked"] == 7
    assert overbooked["available"] == 0
    assert overbooked["bookable"] is False
    assert view["total_available"] == 5 + 0 + 4
    assert view["total_booked"] == 7
    assert view["total_available"] == sum(s["available"] for s in view["slots"])


def test_started_slot_not_bookable_even_with_room():
    view = day_view(open_day(started=(True, False, False)), {})
    assert [s["bookable"] for s in view["slots"]] == [False, True, True]
    assert view["slots"][0]["available"] == 5


def test_full_slot_not_bookable():
    view = day_view(open_day(), {"17:00": 5, "19:00": 3})
    assert [s["bookable"] for s in view["slots"]] == [False, True, True]


def test_counts_unknown():
    view = day_view(open_day(started=(True, False, False)), None)
    assert view["counts"] == "unknown"
    assert view["total_booked"] is None
    assert view["total_available"] is None
    assert view["total_capacity"] == 12
    assert all(s["booked"] is None and s["available"] is None for s in view["slots"])
    assert [s["bookable"] for s in view["slots"]] == [False, True, True]


def test_counts_for_unknown_slot_ignored():
    view = day_view(open_day(), {"21:00": 9})
    assert view["total_booked"] == 0
    assert view["total_available"] == 12


def test_closed_day_view():
    day = Day(date(2026, 11, 27), 5, CLOSED, "not_scheduled", (), ())
    view = day_view(day, {})
    assert view["status"] == CLOSED
    assert view["reason"] == "not_scheduled"
    assert view["slots"] == []
    assert (view["total_capacity"], view["total_booked"], view["total_available"]) == (0, 0, 0)


def test_counts_view_open_day():
    view = counts_view(open_day(), {"17:00": 2, "18:00": 9})
    assert view["slots"] == {
        "17:00": {"capacity": 5, "booked": 2, "held": 0, "offered": 0, "available": 3},
        "18:00": {"capacity": 3, "booked": 9, "held": 0, "offered": 0, "available": 0},
        "19:00": {"capacity": 4, "booked": 0, "held": 0, "offered": 0, "available": 4},
    }
    assert view["total_booked"] == 11
    assert view["status"] == OPEN
    assert view["counts"] == "live"


def test_counts_view_unknown_counts():
    view = counts_view(open_day(), None)
    assert view["total_booked"] is None
    assert view["counts"] == "unknown"
    assert view["slots"]["17:00"] == {
        "capacity": 5,
        "booked": None,
        "held": None,
        "offered": None,
        "available": None,
    }


def test_counts_view_closed_day_has_no_slots():
    day = Day(date(2026, 12, 16), 3, CLOSED, "Victory Day", (), (), override=True)
    view = counts_view(day, {"17:00": 4})
    assert view["slots"] == {}
    assert view["total_booked"] == 0
    assert view["reason"] == "Victory Day"


def test_views_from_a_compiled_schedule():
    schedule = compile_schedule(
        {
            "hospital_id": "h",
            "timezone": "Asia/Dhaka",
            "schedule": {"6": {"slots": [{"start": "17:00", "end": "18:00", "capacity": 2}]}},
            "max_appointments_per_slot": 15,
            "advance_booking_days": 60,
        }
    )
    day = schedule.day(SAT, datetime(2026, 11, 24, 4, 0, tzinfo=UTC))
    view = day_view(day, {"17:00": 1})
    assert view["slots"][0]["display"] == "05:00 PM - 06:00 PM"
    assert view["slots"][0]["available"] == 1


@st.composite
def days_and_counts(draw):
    n = draw(st.integers(0, 8))
    slots = tuple(slot(f"{h:02d}:00", f"{h:02d}:30", draw(st.integers(1, 20))) for h in range(n))
    cut = draw(st.integers(0, n))
    started = (True,) * cut + (False,) * (n - cut)
    starts = st.sampled_from([s.start for s in slots] or ["00:00"])
    booked = draw(st.none() | st.dictionaries(starts, st.integers(0, 40)))
    if booked is not None:  # live holds (`h:`), some of them waitlist offers (`o:`)
        for start, units in draw(st.dictionaries(starts, st.integers(0, 10))).items():
            booked["h:" + start] = units
            booked["o:" + start] = draw(st.integers(0, units))
    return open_day(started=started, slots=slots), booked


@settings(max_examples=100, deadline=None)
@given(days_and_counts())
def test_property_views_add_up(scenario):
    day, booked = scenario
    view = day_view(day, booked)
    counts = counts_view(day, booked)
    assert view["total_capacity"] == sum(s.capacity for s in day.slots)
    for entry, started in zip(view["slots"], day.started, strict=True):
        if booked is None:
            assert entry["available"] is None
            assert entry["bookable"] == (not started)
            continue
        taken = entry["booked"] + entry["held"]
        assert entry["held"] == booked.get("h:" + entry["start"], 0)
        assert entry["available"] >= 0
        assert entry["available"] == max(0, entry["capacity"] - taken)
        assert entry["bookable"] == (not started and taken < entry["capacity"])
        assert counts["slots"][entry["start"]] == {
            "capacity": entry["capacity"],
            "booked": entry["booked"],
            "held": entry["held"],
            "offered": booked.get("o:" + entry["start"], 0),
            "available": entry["available"],
        }
    if booked is None:
        assert view["total_booked"] is None and counts["total_booked"] is None
    else:
        assert view["total_booked"] == sum(s["booked"] for s in view["slots"])
        assert view["total_available"] == sum(s["available"] for s in view["slots"])
        assert view["total_held"] == sum(s["held"] for s in view["slots"])
        assert counts["total_booked"] == view["total_booked"]
        assert view["total_available"] <= view["total_capacity"]


@pytest.mark.parametrize("booked", [{}, {"17:00": 1}, None])
def test_views_do_not_modify_counts(booked):
    before = None if booked is None else dict(booked)
    day_view(open_day(), booked)
    counts_view(open_day(), booked)
    assert booked == before


# --- the one cache of the read answers, keyed by values ------------------------------------


def test_counts_are_values_parsed_from_the_reply():
    from shared.capacity_reads import DayCounts

    raw = (b"17:00", b"2", b"_ready", b"1", b"18:00", b"3")
    counts = DayCounts(raw)
    assert dict(counts) == {"17:00": 2, "18:00": 3}
    assert counts.get("19:00", 0) == 0
    assert counts == DayCounts(tuple(raw)) and hash(counts) == hash(DayCounts(tuple(raw)))
    assert counts != DayCounts((b"17:00", b"2"))
    assert counts == {"17:00": 2, "18:00": 3}


def test_an_answer_is_looked_up_only_for_the_same_day_and_counts():
    from shared.capacity_reads import DayCounts

    one = DayCounts((b"17:00", b"1", b"_ready", b"1"))
    two = DayCounts((b"17:00", b"2", b"_ready", b"1"))
    day = open_day()
    first = day_document(day, one)
    assert day_document(day, DayCounts((b"17:00", b"1", b"_ready", b"1"))) is first
    assert day_document(day, two)["slots"][0]["booked"] == 2
    assert day_document(day, None)["counts"] == "unknown"
    later = open_day(started=(True, False, False))  # the same date once a slot has started
    assert day_document(later, one)["slots"][0]["bookable"] is False
    assert day_document(day, one)["slots"][0]["bookable"] is True
    assert counts_document(day, one)["slots"]["17:00"]["booked"] == 1


def test_plain_counts_are_never_cached():
    day = open_day()
    booked = {"17:00": 1}
    assert day_document(day, booked)["total_booked"] == 1
    booked["17:00"] = 4
    assert day_document(day, booked)["total_booked"] == 4


def test_the_cache_is_bounded(monkeypatch):
    from shared import answers
    from shared.capacity_reads import DayCounts

    monkeypatch.setattr(answers, "_MAX_DOCUMENTS", 5)
    for n in range(20):
        counts = DayCounts((b"17:00", str(n).encode(), b"_ready", b"1"))
        assert day_document(open_day(), counts)["slots"][0]["booked"] == n
    assert len(answers._DOCUMENTS) <= 5


def _counts(**booked: int):
    """DayCounts as a reply from Redis gives them (fields and values as bytes)."""
    from shared.capacity_reads import DayCounts

    return DayCounts(tuple(x for k, v in booked.items() for x in (k.encode(), str(v).encode())))


def test_a_written_calendar_or_bulk_answer_is_the_documents_and_follows_the_counts():
    """Issue 26: calendars and bulk reads are kept written by their days' counts. The bytes
    are those of the documents written afresh, and a change of one day's counts (or of the
    units asked about) is another answer."""
    from shared.answers import CountedDays, bulk_body, calendar_body

    first = open_day()
    second = Day(date(2026, 11, 29), 0, OPEN, None, SLOTS, (False, False, False))
    before = CountedDays([(first, _counts(**{"17:00": 1})), (second, _counts())])
    after = CountedDays([(first, _counts(**{"17:00": 2})), (second, _counts())])
    fresh = {
        "hospital_id": "h",
        "start": "2026-11-28",
        "days": [day_document(d, c) for d, c in before.days],
    }
    assert calendar_body("h", None, before) == orjson.dumps(fresh)
    assert calendar_body("h", None, before) is calendar_body("h", None, before)  # kept
    changed = json.loads(calendar_body("h", None, after))
    assert changed["days"][0]["slots"][0]["booked"] == 2
    assert json.loads(calendar_body("h", "doc", before))["practitioner_id"] == "doc"
    with_units = CountedDays(before.days, units=2)
    assert "fits" in json.loads(calendar_body("h", None, with_units))["days"][0]["slots"][0]
    bulk = json.loads(bulk_body("h", None, after))
    assert bulk["dates"]["2026-11-28"]["slots"]["17:00"]["booked"] == 2
    assert bulk_body("h", None, after) == orjson.dumps(
        {"hospital_id": "h", "dates": {d.iso: counts_document(d, c) for d, c in after.days}}
    )
    # counts that are not a reply (plain mappings) are written every time, never kept
    plain = CountedDays([(first, {"17:00": 4})])
    assert json.loads(calendar_body("h", None, plain))["days"][0]["slots"][0]["booked"] == 4


def test_the_written_answers_are_bounded(monkeypatch):
    from shared import answers
    from shared.answers import CountedDays, calendar_body

    monkeypatch.setattr(answers, "_MAX_ANSWERS", 3)
    for n in range(10):
        counted = CountedDays([(open_day(), _counts(**{"17:00": n}))])
        assert json.loads(calendar_body("h", None, counted))["days"][0]["slots"][0]["booked"] == n
    assert len(answers._ANSWERS) <= 3
