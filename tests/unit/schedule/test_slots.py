"""shared/slots.py: expanding a hospital configuration into the slots of a date (pure)."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedule_service.seed import GOMOTI
from shared import slots
from shared.slots import (
    BEYOND_WINDOW,
    CLOSED,
    NOT_SCHEDULED,
    OPEN,
    PAST,
    compile_schedule,
    display_text,
    js_weekday,
    parse_date,
)
from tests.unit import builders
from tests.unit.builders import FRI, MON, NEXT_MON, NOW, SAT, SUN, THU, TUE, WED

DHAKA = ZoneInfo("Asia/Dhaka")
hospital = partial(builders.hospital, "slots")


def hourly(first: int, last: int) -> list[str]:
    return [f"{h:02d}:00" for h in range(first, last)]


@pytest.fixture
def gomoti():
    return compile_schedule(copy.deepcopy(GOMOTI))


# --- helpers -------------------------------------------------------------------------------


def test_js_weekday_is_zero_on_sunday():
    assert [js_weekday(d) for d in (MON, TUE, WED, THU, FRI, SAT, SUN)] == [1, 2, 3, 4, 5, 6, 0]


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        ("17:00", "18:00", "05:00 PM - 06:00 PM"),
        ("00:00", "00:30", "12:00 AM - 12:30 AM"),
        ("12:00", "12:45", "12:00 PM - 12:45 PM"),
        ("11:59", "13:05", "11:59 AM - 01:05 PM"),
        ("09:15", "23:59", "09:15 AM - 11:59 PM"),
    ],
)
def test_display_text_twelve_hour(start, end, text):
    assert display_text(start, end) == text


def test_parse_date_accepts_iso_date():
    assert parse_date("2026-11-28") == date(2026, 11, 28)
    assert parse_date("2028-02-29") == date(2028, 2, 29)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30",
        "2026-13-01",
        "2027-02-29",
        "26-11-28",
        "2026-11-28T00:00",
        "2026-1-28",
        "2026/11/28",
        "20261128",
        "",
        " 2026-11-28",
        "2026-11-28\n",
        "২০২৬-১১-২৮",
    ],
)
def test_parse_date_rejects_malformed_or_impossible(text):
    assert parse_date(text) is None


@pytest.mark.parametrize("value", [None, 20261128, date(2026, 11, 28), b"2026-11-28", ["x"]])
def test_parse_date_rejects_non_strings(value):
    assert parse_date(value) is None


# --- the Gomoti configuration ---------------------------------------------------------------


@pytest.mark.parametrize(("day", "weekday"), [(NEXT_MON, 1), (WED, 3), (SAT, 6)])
def test_gomoti_evening_days_have_five_hourly_slots(gomoti, day, weekday):
    result = gomoti.day(day, NOW)
    assert result.status == OPEN
    assert result.weekday == weekday
    assert result.reason is None
    assert result.override is False
    assert [s.start for s in result.slots] == hourly(17, 22)
    assert [s.end for s in result.slots] == [f"{h:02d}:00" for h in range(18, 23)]
    assert result.slots[0].display == "05:00 PM - 06:00 PM"
    assert result.slots[-1].display == "09:00 PM - 10:00 PM"
    assert all(s.capacity == 15 for s in result.slots)
    assert result.started == (False,) * 5


def test_gomoti_thursday_has_six_slots_from_four(gomoti):
    result = gomoti.day(THU, NOW)
    assert result.status == OPEN
    assert [s.start for s in result.slots] == hourly(16, 22)
    assert result.slots[0].display == "04:00 PM - 05:00 PM"


@pytest.mark.parametrize(("day", "weekday"), [(FRI, 5), (SUN, 0), (TUE, 2)])
def test_gomoti_unscheduled_days_are_closed(gomoti, day, weekday):
    result = gomoti.day(day, NOW)
    assert result.status == CLOSED
    assert result.reason == NOT_SCHEDULED
    assert result.weekday == weekday
    assert result.slots == ()
    assert result.started == ()
    assert result.override is False


def test_gomoti_days_lists_consecutive_dates(gomoti):
    days = gomoti.days(TUE, 7, NOW)
    assert [d.date for d in days] == [TUE + timedelta(days=i) for i in range(7)]
    assert [d.status for d in days] == [CLOSED, OPEN, OPEN, CLOSED, OPEN, CLOSED, OPEN]
    assert [len(d.slots) for d in days] == [0, 5, 6, 0, 5, 0, 5]


def test_day_slot_lookup(gomoti):
    result = gomoti.day(SAT, NOW)
    assert result.slot("19:00").end == "20:00"
    assert result.slot("16:00") is None
    assert result.slot("19:30") is None
    assert result.iso == "2026-11-28"


# --- capacity ---------------------------------------------------------------------------


def test_slot_capacity_overrides_hospital_default():
    doc = hospital(
        schedule={
            "1": {
                "slots": [
                    {"start": "09:00", "end": "10:00", "capacity": 3},
                    {"start": "10:00", "end": "11:00"},
                ]
            }
        },
        max_appointments_per_slot=20,
    )
    result = compile_schedule(doc).day(NEXT_MON, NOW)
    assert [(s.start, s.capacity) for s in result.slots] == [("09:00", 3), ("10:00", 20)]


def test_slots_are_ordered_by_start_and_display_kept_when_given():
    doc = hospital(
        schedule={
            "1": {
                "slots": [
                    {"start": "18:00", "end": "19:00"},
                    {"start": "08:00", "end": "09:00", "display": "Morning"},
                ]
            }
        }
    )
    result = compile_schedule(doc).day(NEXT_MON, NOW)
    assert [s.start for s in result.slots] == ["08:00", "18:00"]
    assert [s.display for s in result.slots] == ["Morning", "06:00 PM - 07:00 PM"]


# --- date overrides -----------------------------------------------------------------------


def test_closed_override_shows_its_reason_and_does_not_leak(gomoti):
    doc = copy.deepcopy(GOMOTI)
    doc["date_overrides"] = {"2026-11-28": {"closed": True, "reason": "Victory Day"}}
    schedule = compile_schedule(doc)
    result = schedule.day(SAT, NOW)
    assert result.status == CLOSED
    assert result.reason == "Victory Day"
    assert result.override is True
    assert result.slots == ()
    assert schedule.configured_slots(SAT) == ()
    # The neighbours keep their weekday schedule.
    friday, sunday = schedule.day(FRI, NOW), schedule.day(SUN, NOW)
    assert (friday.status, friday.reason, friday.override) == (CLOSED, NOT_SCHEDULED, False)
    assert sunday.status == CLOSED and sunday.override is False
    next_saturday = schedule.day(SAT + timedelta(days=7), NOW)
    assert next_saturday.status == OPEN
    assert [s.start for s in next_saturday.slots] == hourly(17, 22)


def test_closed_override_without_reason_says_closed():
    doc = hospital(date_overrides={"2026-11-30": {"closed": True}})
    result = compile_schedule(doc).day(NEXT_MON, NOW)
    assert result.status == CLOSED
    assert result.reason == "closed"
    assert result.override is True


def test_replacement_slots_on_normally_open_day():
    doc = copy.deepcopy(GOMOTI)
    doc["date_overrides"] = {
        "2026-11-25": {"slots": [{"start": "10:00", "end": "11:00", "capacity": 4}]}
    }
    schedule = compile_schedule(doc)
    result = schedule.day(WED, NOW)
    assert result.status == OPEN
    assert result.override is True
    assert [(s.start, s.end, s.capacity) for s in result.slots] == [("10:00", "11:00", 4)]
    assert result.slots[0].display == "10:00 AM - 11:00 AM"
    assert [s.start for s in schedule.configured_slots(WED)] == ["10:00"]
    # Monday and Thursday around it keep the weekday slots.
    assert [s.start for s in schedule.day(NEXT_MON, NOW).slots] == hourly(17, 22)
    assert [s.start for s in schedule.day(THU, NOW).slots] == hourly(16, 22)
    assert schedule.day(THU, NOW).override is False


def test_replacement_slots_on_normally_closed_weekday():
    doc = copy.deepcopy(GOMOTI)
    doc["date_overrides"] = {
        "2026-11-27": {
            "slots": [{"start": "10:00", "end": "11:00"}, {"start": "08:00", "end": "09:00"}]
        }
    }
    schedule = compile_schedule(doc)
    result = schedule.day(FRI, NOW)
    assert result.status == OPEN
    assert result.override is True
    assert result.weekday == 5
    assert [s.start for s in result.slots] == ["08:00", "10:00"]
    assert all(s.capacity == 15 for s in result.slots)
    following_friday = schedule.day(FRI + timedelta(days=7), NOW)
    assert (following_friday.status, following_friday.reason) == (CLOSED, NOT_SCHEDULED)


def test_override_outside_window_is_still_outside_window():
    doc = hospital(
        advance_booking_days=2,
        date_overrides={"2026-11-30": {"slots": [{"start": "10:00", "end": "11:00"}]}},
    )
    schedule = compile_schedule(doc)
    assert schedule.day(date(2026, 11, 30), NOW).status == BEYOND_WINDOW
    # ...though the configuration still gives it its slots.
    assert [s.start for s in schedule.configured_slots(date(2026, 11, 30))] == ["10:00"]


# --- booking window and "today" -----------------------------------------------------------


def test_booking_window_edges():
    late = [{"start": "23:00", "end": "23:30"}]
    doc = hospital(schedule={str(i): {"slots": late} for i in range(7)})
    doc["advance_booking_days"] = 10
    schedule = compile_schedule(doc)
    today = date(2026, 11, 24)
    assert schedule.day(today, NOW).status == OPEN
    assert schedule.day(today + timedelta(days=10), NOW).status == OPEN
    beyond = schedule.day(today + timedelta(days=11), NOW)
    assert beyond.status == BEYOND_WINDOW
    assert beyond.slots == () and beyond.started == ()
    past = schedule.day(today - timedelta(days=1), NOW)
    assert past.status == PAST
    assert past.slots == ()


def test_zero_day_window_only_today():
    late = [{"start": "23:00", "end": "23:30"}]
    doc = hospital(schedule={str(i): {"slots": late} for i in range(7)})
    doc["advance_booking_days"] = 0
    schedule = compile_schedule(doc)
    assert schedule.day(date(2026, 11, 24), NOW).status == OPEN
    assert schedule.day(date(2026, 11, 25), NOW).status == BEYOND_WINDOW


def test_today_is_in_hospital_zone_not_utc(gomoti):
    # 19:30Z on the 24th is 01:30 on the 25th (a Wednesday) in Dhaka (UTC+6).
    now = datetime(2026, 11, 24, 19, 30, tzinfo=UTC)
    assert gomoti.today(now) == WED
    assert gomoti.day(TUE, now).status == PAST
    wednesday = gomoti.day(WED, now)
    assert wednesday.status == OPEN
    assert wednesday.started == (False,) * 5
    # Window counted from the Dhaka date: the 25th + 60 days is in, + 61 is not.
    assert gomoti.day(WED + timedelta(days=60), now).status != BEYOND_WINDOW
    assert gomoti.day(WED + timedelta(days=61), now).status == BEYOND_WINDOW


def test_todays_started_slots(gomoti):
    # 12:30Z is 18:30 in Dhaka: the 17:00 and 18:00 slots have started.
    now = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    result = gomoti.day(SAT, now)
    assert result.status == OPEN
    assert result.started == (True, True, False, False, False)
    assert result.has_started("18:00") is True
    assert result.has_started("19:00") is False
    assert result.has_started("16:00") is False
    # Exactly at the start minute, the slot has started.
    at_start = gomoti.day(SAT, datetime(2026, 11, 28, 13, 0, tzinfo=UTC))
    assert at_start.started == (True, True, True, False, False)
    one_second_before = gomoti.day(SAT, datetime(2026, 11, 28, 12, 59, 59, tzinfo=UTC))
    assert one_second_before.started == (True, True, False, False, False)
    # The same instant seen from a later date: nothing started.
    assert gomoti.day(SAT + timedelta(days=2), now).started == (False,) * 5


def test_today_works_with_any_aware_now(gomoti):
    now = datetime(2026, 11, 24, 22, 0, tzinfo=ZoneInfo("America/New_York"))  # 03:00Z 25th
    assert gomoti.today(now) == WED


# --- starts_at / expire_at ----------------------------------------------------------------


def test_starts_at_converts_wall_time_to_utc(gomoti):
    assert gomoti.starts_at(SAT, "17:00") == datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    assert gomoti.starts_at(SAT, "00:30") == datetime(2026, 11, 27, 18, 30, tzinfo=UTC)
    assert gomoti.starts_at(SAT, "17:00").utcoffset() == timedelta(0)


def test_expire_at_is_after_the_day_ends(gomoti):
    expire = gomoti.expire_at(SAT)
    end_of_day = datetime.combine(SAT + timedelta(days=1), time(), tzinfo=DHAKA)
    assert expire > end_of_day.timestamp()
    assert datetime.fromtimestamp(expire, DHAKA).date() >= SAT + timedelta(days=2)
    assert datetime.fromtimestamp(expire, DHAKA).time() == time()


def test_compile_keeps_identity_fields():
    doc = hospital(hospital_id="gomoti", version=7, timezone="Europe/London")
    schedule = compile_schedule(doc)
    assert schedule.hospital_id == "gomoti"
    assert schedule.version == 7
    assert schedule.tz == ZoneInfo("Europe/London")
    assert schedule.advance_booking_days == 60


# --- DST change days ----------------------------------------------------------------------

HALF_PAST = ["00:30", "01:30", "02:30", "03:30"]


def every_day_half_past(zone: str):
    slots = [{"start": s, "end": f"{int(s[:2]) + 1:02d}:30"} for s in HALF_PAST]
    doc = hospital(
        timezone=zone,
        schedule={str(i): {"slots": copy.deepcopy(slots)} for i in range(7)},
    )
    return compile_schedule(doc)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


LONDON_SPRING = date(2026, 3, 29)  # 01:00 GMT -> 02:00 BST
LONDON_FALL = date(2026, 10, 25)  # 02:00 BST -> 01:00 GMT
NY_SPRING = date(2026, 3, 8)  # 02:00 EST -> 03:00 EDT
NY_FALL = date(2026, 11, 1)  # 02:00 EDT -> 01:00 EST


@pytest.mark.parametrize(
    ("zone", "day", "now", "started"),
    [
        # London, spring forward.
        ("Europe/London", LONDON_SPRING, utc(2026, 3, 29, 0, 20), (False, False, False, False)),
        ("Europe/London", LONDON_SPRING, utc(2026, 3, 29, 0, 40), (True, False, False, False)),
        # 01:10Z is 02:10 BST: the wall clock has passed 01:30 (which never happened).
        ("Europe/London", LONDON_SPRING, utc(2026, 3, 29, 1, 10), (True, True, False, False)),
        ("Europe/London", LONDON_SPRING, utc(2026, 3, 29, 1, 40), (True, True, True, False)),
        ("Europe/London", LONDON_SPRING, utc(2026, 3, 29, 2, 40), (True, True, True, True)),
        # London, fall back: 23:20Z on the 24th is already 00:20 BST on the 25th.
        ("Europe/London", LONDON_FALL, utc(2026, 10, 24, 23, 20), (False, False, False, False)),
        ("Europe/London", LONDON_FALL, utc(2026, 10, 24, 23, 40), (True, False, False, False)),
        ("Europe/London", LONDON_FALL, utc(2026, 10, 25, 0, 40), (True, True, False, False)),
        ("Europe/London", LONDON_FALL, utc(2026, 10, 25, 1, 40), (True, True, False, False)),
        ("Europe/London", LONDON_FALL, utc(2026, 10, 25, 2, 40), (True, True, True, False)),
        ("Europe/London", LONDON_FALL, utc(2026, 10, 25, 3, 40), (True, True, True, True)),
        # New York, spring forward (07:10Z is 03:10 EDT).
        ("America/New_York", NY_SPRING, utc(2026, 3, 8, 5, 20), (False, False, False, False)),
        ("America/New_York", NY_SPRING, utc(2026, 3, 8, 6, 40), (True, True, False, False)),
        ("America/New_York", NY_SPRING, utc(2026, 3, 8, 7, 10), (True, True, True, False)),
        ("America/New_York", NY_SPRING, utc(2026, 3, 8, 7, 40), (True, True, True, True)),
        # New York, fall back (05:40Z is 01:40 EDT, 06:40Z is 01:40 EST).
        ("America/New_York", NY_FALL, utc(2026, 11, 1, 4, 20), (False, False, False, False)),
        ("America/New_York", NY_FALL, utc(2026, 11, 1, 5, 40), (True, True, False, False)),
        ("America/New_York", NY_FALL, utc(2026, 11, 1, 6, 40), (True, True, False, False)),
        ("America/New_York", NY_FALL, utc(2026, 11, 1, 7, 40), (True, True, True, False)),
    ],
)
def test_started_flags_on_dst_change_days(zone, day, now, started):
    schedule = every_day_half_past(zone)
    assert schedule.today(now) == day
    result = schedule.day(day, now)
    assert result.status == OPEN
    assert [s.start for s in result.slots] == HALF_PAST
    assert result.started == started


@pytest.mark.parametrize(
    ("zone", "day", "first", "second"),
    [
        # 01:40 BST (00:40Z), then 01:10 GMT (01:10Z) after the clocks went back.
        ("Europe/London", LONDON_FALL, utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 1, 10)),
        # 01:40 EDT (05:40Z), then 01:10 EST (06:10Z).
        ("America/New_York", NY_FALL, utc(2026, 11, 1, 5, 40), utc(2026, 11, 1, 6, 10)),
    ],
)
def test_started_slot_stays_started_in_repeated_hour(zone, day, first, second):
    """A slot that has started cannot become bookable again when the clocks go back."""
    schedule = every_day_half_past(zone)
    assert schedule.day(day, first).has_started("01:30")
    later = schedule.day(day, second)
    assert second > schedule.starts_at(day, "01:30")
    assert later.has_started("01:30"), (
        f"01:30 slot reported started at {first:%H:%MZ}, not started again at {second:%H:%MZ}"
    )


@pytest.mark.parametrize(
    ("zone", "now", "today"),
    [
        ("Europe/London", utc(2026, 3, 28, 23, 59), date(2026, 3, 28)),
        ("Europe/London", utc(2026, 3, 29, 0, 0), date(2026, 3, 29)),
        ("Europe/London", utc(2026, 10, 24, 22, 59), date(2026, 10, 24)),
        ("Europe/London", utc(2026, 10, 24, 23, 0), date(2026, 10, 25)),
        ("America/New_York", utc(2026, 3, 8, 4, 59), date(2026, 3, 7)),
        ("America/New_York", utc(2026, 3, 8, 5, 0), date(2026, 3, 8)),
        ("America/New_York", utc(2026, 11, 1, 3, 59), date(2026, 10, 31)),
        ("America/New_York", utc(2026, 11, 1, 4, 0), date(2026, 11, 1)),
    ],
)
def test_today_around_midnight_of_dst_days(zone, now, today):
    schedule = every_day_half_past(zone)
    assert schedule.today(now) == today
    assert schedule.day(today - timedelta(days=1), now).status == PAST
    assert schedule.day(today, now).status == OPEN


@pytest.mark.parametrize(
    ("zone", "day", "hhmm", "expected"),
    [
        ("Europe/London", LONDON_SPRING, "00:30", utc(2026, 3, 29, 0, 30)),
        ("Europe/London", LONDON_SPRING, "02:30", utc(2026, 3, 29, 1, 30)),
        ("Europe/London", LONDON_FALL, "00:30", utc(2026, 10, 24, 23, 30)),
        ("Europe/London", LONDON_FALL, "02:30", utc(2026, 10, 25, 2, 30)),
        ("America/New_York", NY_SPRING, "01:30", utc(2026, 3, 8, 6, 30)),
        ("America/New_York", NY_SPRING, "03:30", utc(2026, 3, 8, 7, 30)),
        ("America/New_York", NY_FALL, "00:30", utc(2026, 11, 1, 4, 30)),
        ("America/New_York", NY_FALL, "02:30", utc(2026, 11, 1, 7, 30)),
    ],
)
def test_starts_at_on_dst_days(zone, day, hhmm, expected):
    assert every_day_half_past(zone).starts_at(day, hhmm) == expected


@pytest.mark.parametrize(
    ("zone", "day", "first", "second"),
    [
        ("Europe/London", LONDON_FALL, utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
        ("America/New_York", NY_FALL, utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)),
    ],
)
def test_starts_at_of_repeated_wall_time_is_one_of_its_instants(zone, day, first, second):
    assert every_day_half_past(zone).starts_at(day, "01:30") in (first, second)


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("Europe/London", LONDON_SPRING - timedelta(days=2)),
        ("Europe/London", LONDON_FALL - timedelta(days=2)),
        ("America/New_York", NY_FALL - timedelta(days=2)),
    ],
)
def test_expire_at_across_dst(zone, day):
    tz = ZoneInfo(zone)
    expire = every_day_half_past(zone).expire_at(day)
    local = datetime.fromtimestamp(expire, tz)
    assert local.date() >= day + timedelta(days=2)
    assert local.time() == time()


# --- property-based ----------------------------------------------------------------------

ZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "America/Santiago",
    "Asia/Dhaka",
    "UTC",
    "Pacific/Chatham",
]
STATUSES = {OPEN, CLOSED, PAST, BEYOND_WINDOW}


def hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


@st.composite
def slot_lists(draw, min_size: int = 0):
    """Non-overlapping slots (possibly touching), in random order, some with a capacity."""
    bounds = sorted(
        draw(st.lists(st.integers(0, 1439), unique=True, min_size=2 * min_size, max_size=12))
    )
    if len(bounds) % 2:
        bounds = bounds[:-1]
    slots = []
    for start, end in zip(bounds[::2], bounds[1::2], strict=True):
        slot = {"start": hhmm(start), "end": hhmm(end)}
        if draw(st.booleans()):
            slot["capacity"] = draw(st.integers(1, 50))
        slots.append(slot)
    return draw(st.permutations(slots))


@st.composite
def scenarios(draw):
    zone = draw(st.sampled_from(ZONES))
    now = draw(
        st.datetimes(
            min_value=datetime(2025, 1, 1),
            max_value=datetime(2028, 12, 31),
            timezones=st.just(UTC),
        )
    )
    window = draw(st.integers(0, 366))
    weekdays = draw(st.sets(st.integers(0, 6)))
    schedule = {str(w): {"slots": draw(slot_lists())} for w in weekdays}
    today = now.astimezone(ZoneInfo(zone)).date()
    overrides = {}
    for offset in draw(st.sets(st.integers(-3, window + 3), max_size=5)):
        if draw(st.booleans()):
            value = {"closed": True}
            if draw(st.booleans()):
                value["reason"] = draw(st.sampled_from(["Victory Day", "Eid", "Repairs"]))
        else:
            value = {"slots": draw(slot_lists())}
        overrides[(today + timedelta(days=offset)).isoformat()] = value
    doc = hospital(
        timezone=zone,
        schedule=schedule,
        max_appointments_per_slot=draw(st.integers(1, 100)),
        advance_booking_days=window,
        date_overrides=overrides,
    )
    offset = draw(
        st.one_of(
            st.integers(-400, window + 400),
            st.integers(-2, window + 2),
            st.sampled_from([0, window, window + 1, -1]),
        )
    )
    return doc, now, today + timedelta(days=offset)


def expected_raw_slots(doc: dict, day: date) -> list[dict] | None:
    """The configuration's slots for `day` (override first), or None when closed by one."""
    override = doc["date_overrides"].get(day.isoformat())
    if override is not None:
        return None if override.get("closed") else override.get("slots", [])
    return doc["schedule"].get(str((day.weekday() + 1) % 7), {}).get("slots", [])


def wall_ambiguous_or_missing(tz: ZoneInfo, day: date, wall: str) -> bool:
    naive = datetime.combine(day, time(int(wall[:2]), int(wall[3:])))
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    return first.utcoffset() != second.utcoffset()


def wall_missing(tz: ZoneInfo, day: date, wall: str) -> bool:
    """True when no instant has this wall time on `day` in `tz` (a DST gap)."""
    naive = datetime.combine(day, time(int(wall[:2]), int(wall[3:])))
    for fold in (0, 1):
        offset = naive.replace(tzinfo=tz, fold=fold).utcoffset()
        instant = (naive - offset).replace(tzinfo=UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == naive:
            return False
    return True


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_property_day_expansion(scenario):
    doc, now, day = scenario
    schedule = compile_schedule(doc)
    tz = ZoneInfo(doc["timezone"])
    today = now.astimezone(tz).date()
    result = schedule.day(day, now)
    offset = (day - today).days

    assert schedule.today(now) == today
    assert result.date == day
    assert result.weekday == (day.weekday() + 1) % 7
    assert result.status in STATUSES
    assert (len(result.slots) > 0) == (result.status == OPEN)
    assert len(result.started) == len(result.slots)

    in_window = 0 <= offset <= doc["advance_booking_days"]
    assert (result.status in (OPEN, CLOSED)) == in_window
    assert (result.status == PAST) == (offset < 0)
    assert (result.status == BEYOND_WINDOW) == (offset > doc["advance_booking_days"])

    if not in_window:
        return
    raw = expected_raw_slots(doc, day)
    has_override = day.isoformat() in doc["date_overrides"]
    assert result.override == has_override
    if not raw:
        assert result.status == CLOSED
        if has_override:
            assert result.reason == doc["date_overrides"][day.isoformat()].get("reason", "closed")
        else:
            assert result.reason == NOT_SCHEDULED
        return
    assert result.status == OPEN
    assert result.reason is None
    expected = sorted(
        (s["start"], s["end"], s.get("capacity", doc["max_appointments_per_slot"])) for s in raw
    )
    assert [(s.start, s.end, s.capacity) for s in result.slots] == expected
    assert all(s.display == display_text(s.start, s.end) for s in result.slots)
    assert schedule.configured_slots(day) == result.slots

    if day != today:
        assert not any(result.started)
        return
    # Monotone: a started slot means every earlier slot started.
    for i, started in enumerate(result.started):
        if started:
            assert all(result.started[:i])
    # Where the wall time is unambiguous, "started" means the start instant has passed.
    for slot, started in zip(result.slots, result.started, strict=True):
        if not wall_ambiguous_or_missing(tz, day, slot.start):
            assert started == (now >= schedule.starts_at(day, slot.start)), slot.start


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)),
    minute=st.integers(0, 1439),
)
def test_property_starts_at_has_the_wall_time(zone, day, minute):
    schedule = compile_schedule(hospital(timezone=zone))
    tz = ZoneInfo(zone)
    wall = hhmm(minute)
    instant = schedule.starts_at(day, wall)
    assert instant.utcoffset() == timedelta(0)
    local = instant.astimezone(tz)
    assert local.date() == day
    if wall_missing(tz, day, wall):
        # In a gap the instant is within the hour the clocks skipped.
        shift = local.hour * 60 + local.minute - minute
        assert 0 < abs(shift) <= 60
    else:
        assert local.strftime("%H:%M") == wall


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)),
)
def test_property_expire_at_after_the_day(zone, day):
    schedule = compile_schedule(hospital(timezone=zone))
    tz = ZoneInfo(zone)
    expire = schedule.expire_at(day)
    local = datetime.fromtimestamp(expire, tz).date()
    assert day + timedelta(days=2) <= local <= day + timedelta(days=3)
    assert expire > schedule.starts_at(day, "23:59").timestamp()


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=12),
        st.dates().map(date.isoformat),
        st.from_regex(r"\A\d{4}-\d{2}-\d{2}\Z"),
    )
)
def test_property_parse_date_is_strict(text):
    parsed = parse_date(text)
    if parsed is not None:
        assert parsed.isoformat() == text


def cached_hospital(**changes) -> dict:
    """Saturdays 17:00-18:00, 3 places, a 10-day window, version 1."""
    saturdays = {"6": {"slots": [{"start": "17:00", "end": "18:00"}]}}
    base = {"version": 1, "schedule": saturdays, "max_appointments_per_slot": 3}
    return hospital(**{**base, "advance_booking_days": 10, **changes})


# --- a Schedule's cached dates: time-dependent answers stay right at every instant ----------


def test_dates_of_the_window_are_built_once_per_version():
    schedule = compile_schedule(cached_hospital())
    now = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    first = schedule.day(SAT, now)
    assert schedule.day(SAT, now) is first
    assert schedule.days(SAT, 1, now)[0] is first
    assert schedule.expand([SAT], now)[0] is first
    assert compile_schedule(cached_hospital(version=2)).day(SAT, now) is not first


def test_status_and_started_flags_follow_the_clock_on_one_cached_schedule():
    schedule = compile_schedule(cached_hospital())  # Saturdays 17:00-18:00 in Dhaka (UTC+6)

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
    monkeypatch.setattr(slots, "_MAX_UNSTARTED_DAYS", 5)
    schedule = compile_schedule(cached_hospital(advance_booking_days=366))
    now = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    days = schedule.days(date(2026, 11, 24), 40, now)
    assert len(schedule._unstarted_days) <= 5
    assert [d.date for d in days] == [date(2026, 11, 24) + timedelta(days=i) for i in range(40)]
    assert [d.status for d in days] == [d.status for d in schedule.days(days[0].date, 40, now)]
