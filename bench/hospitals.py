"""The bench's hospitals and what it asks of them: the hospitals it creates (admin API), the
plan of a hospital's rows (dates, slots, the read requests), the booking pattern, and the
capacity check (no slot holds more confirmed appointments than its capacity)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import requests

from bench.load import HOSPITAL, Spec, doctor_query
from devstack.stack import Stack
from schedule_service.seed import GOMOTI

# The per-doctor rows: a copy of gomoti whose one doctor works gomoti's own slots, so that a
# doctor's row does the work of the hospital-level row plus the doctor's lookup.
DOCTOR_HOSPITAL = "bench-doctors"
DOCTOR = "doc"
DOCTOR_SUFFIX = " (doctor)"
ADMIN_EMAIL = "portal@drhelal.com"
ADMIN_PASSWORD = "123456"
# The booking rows book into hospitals of their own (gomoti's 60-day window holds ~2,700
# places; rounds of rows would use them up and measure 409 slot_full): hourly slots of
# gomoti's capacity (a slot's places are counted one by one, so a bigger slot would cost each
# booking more), every day, a year ahead: ~5,000 slots, ~75,000 places, shared out among the
# rows in runs of dates of their own.
BOOKING_DAY = {"sessions": [{"start": "08:00", "end": "22:00", "slot_minutes": 60}]}
BOOKING_WINDOW_DAYS = 366
BOOKING_CAPACITY = 15
CALENDAR_MAX_DAYS = 92  # the calendar's largest `days`


def admin_token(base: str) -> str:
    r = requests.post(
        base + "/api/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["access_token"]


def create_hospital(base: str, token: str, hospital: dict) -> str:
    """Create a hospital (admin): "created", or "already there" (409 hospital_exists)."""
    r = requests.post(
        f"{base}/api/dynamic-slots/hospitals",
        json=hospital,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if r.status_code == 409 and r.json().get("error") == "hospital_exists":
        return "already there"
    if r.status_code != 201:
        raise RuntimeError(f"creating {hospital['hospital_id']} failed: {r.status_code} {r.text}")
    return "created"


def create_doctor_hospital(base: str, token: str) -> str:
    """Create `bench-doctors`: gomoti's document with one doctor, "doc", who works the
    hospital's weekly schedule."""
    hospital = copy.deepcopy(GOMOTI)
    hospital.update(
        hospital_id=DOCTOR_HOSPITAL,
        hospital_name="Bench Doctors",
        practitioners={DOCTOR: {"name": "Dr. Bench"}},
    )
    return create_hospital(base, token, hospital)


def booking_hospital(hospital_id: str, practitioner: str | None = None) -> dict:
    """The document of a booking rows' hospital (with one doctor, `practitioner`, who works
    its schedule, when given)."""
    hospital = copy.deepcopy(GOMOTI)
    hospital.update(
        hospital_id=hospital_id,
        hospital_name="Bench Bookings",
        schedule={str(day): copy.deepcopy(BOOKING_DAY) for day in range(7)},
        advance_booking_days=BOOKING_WINDOW_DAYS,
        max_appointments_per_slot=BOOKING_CAPACITY,
    )
    if practitioner:
        hospital["practitioners"] = {practitioner: {"name": "Dr. Bench"}}
    return hospital


def plan(stack: Stack, hospital_id: str = HOSPITAL, practitioner: str | None = None) -> dict:
    """Dates and slots for the rows of a hospital (or of its doctor `practitioner`), from the
    hospital's own configuration and the (doctor's) calendar."""
    hospital = requests.get(
        f"{stack.schedule_url}/api/dynamic-slots/hospitals/{hospital_id}", timeout=10
    ).json()
    today = datetime.now(ZoneInfo(hospital["timezone"])).date()
    window = int(hospital["advance_booking_days"])
    saturday = today + timedelta(days=(5 - today.weekday()) % 7 or 7)
    days: list[dict] = []
    for offset in range(0, window + 1, CALENDAR_MAX_DAYS):
        calendar = requests.get(
            f"{stack.schedule_url}/api/dynamic-slots/calendar/{hospital_id}",
            params={
                "days": min(CALENDAR_MAX_DAYS, window + 1 - offset),
                "start": (today + timedelta(days=offset)).isoformat(),
                **doctor_query(practitioner),
            },
            timeout=30,
        )
        calendar.raise_for_status()
        days += calendar.json()["days"]
    # Not today: a slot could pass mid-run and turn bookings into 422 slot_in_past.
    slots = [
        (day["date"], s["start"])
        for day in days
        if day["status"] == "open" and day["date"] != today.isoformat()
        for s in day["slots"]
        if s["bookable"] and s["available"] > 0
    ]
    capacity = {(day["date"], s["start"]): s["capacity"] for day in days for s in day["slots"]}
    return {
        "hospital": hospital_id,
        "practitioner": practitioner,
        "suffix": DOCTOR_SUFFIX if practitioner else "",
        "today": today,
        "saturday": saturday,
        "slots": slots,
        "capacity": capacity,
        "bulk_dates": [(today + timedelta(days=i)).isoformat() for i in range(60)],
    }


def read_specs(p: dict) -> list[tuple[Spec, str]]:
    """(spec, the service that answers it) for the read rows of the plan's hospital (or of
    its doctor: the same requests with `practitioner_id`, rows named "... (doctor)")."""
    hospital, doctor, suffix = p["hospital"], doctor_query(p["practitioner"]), p["suffix"]
    query = "?" + urlencode(doctor) if doctor else ""
    available = f"/api/dynamic-slots/available/{hospital}/{p['saturday']}{query}"
    cal_query = urlencode({"start": p["today"].isoformat(), **doctor})
    cal = f"/api/dynamic-slots/calendar/{hospital}?{cal_query}&days="
    bulk = json.dumps(
        {"hospital_id": hospital, **doctor, "dates": p["bulk_dates"]}, separators=(",", ":")
    )
    json_headers = {"Content-Type": "application/json"}
    return [
        (Spec("available" + suffix, "GET", available), "schedule"),
        (Spec("calendar?days=1" + suffix, "GET", cal + "1"), "schedule"),
        (Spec("calendar?days=7" + suffix, "GET", cal + "7"), "schedule"),
        (Spec("calendar?days=60" + suffix, "GET", cal + "60"), "schedule"),
        (
            Spec(
                "availability/bulk(60)" + suffix,
                "POST",
                "/api/availability/bulk",
                json_headers,
                bulk,
            ),
            "booking",
        ),
    ]


def slot_chunks(slots: list[tuple[str, str]], n: int) -> list[list[tuple[str, str]]]:
    """`slots` (date, start) cut into `n` runs of whole consecutive dates, as many dates each
    as can be (the first ones one more when they do not divide evenly): one run per booking
    row, so that no row books into another's dates."""
    n = max(1, n)
    dates = sorted({day for day, _ in slots})
    size, extra = divmod(len(dates), n)
    run_of: dict[str, int] = {}
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        run_of.update((day, i) for day in dates[start:end])
        start = end
    out: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    for slot in slots:
        out[run_of[slot[0]]].append(slot)
    return out


def booking_pattern(slots: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The slots that successive bookings go to, round robin: spread over every slot but the
    first three, with a burst of 16 bookings into one of those three "hot" slots after every
    96, so that some slots fill up under concurrent bookings and refuse the rest (409)."""
    if len(slots) < 12:
        return list(slots)
    hot, spread = slots[:3], slots[3:]
    out: list[tuple[str, str]] = []
    bursts = 0
    for i, slot in enumerate(spread, start=1):
        out.append(slot)
        if i % 96 == 0:
            out += [hot[bursts % len(hot)]] * 16
            bursts += 1
    return out


def _appointments(session: requests.Session, url: str, query: dict, tries: int = 10) -> list[dict]:
    """Every appointment the list answers `query` with, page by page (500 a page). Bookings
    the load tool cut off may still be confirming (on a loaded machine, for seconds): when the
    pages do not add up to the total, the list is read again, a second later; raises when
    they never do."""
    for attempt in range(tries):
        found: dict[str, dict] = {}
        page, total = 1, 0
        while True:
            r = session.get(url, params={**query, "per_page": 500, "page": page}, timeout=60)
            r.raise_for_status()
            body = r.json()
            total = body["total"]
            found.update((a["appointment_id"], a) for a in body["appointments"])
            if page * body["per_page"] >= total or not body["appointments"]:
                break
            page += 1
        if len(found) == total:
            return list(found.values())
        if attempt < tries - 1:
            time.sleep(1)
    raise RuntimeError(f"listing {query}: {len(found)} appointments in pages of {total}")


def check_capacity(stack: Stack, token: str, p: dict, dates: list[str] | None = None) -> dict:
    """Per slot of `dates` (default: every date of the plan) of the plan's hospital (or of its
    doctor, whose places are counted apart): confirmed appointments vs capacity and
    availability. The appointments are listed for the whole run of dates at once (a list
    costs about as much for many dates as for one), the availability date by date."""
    hospital, doctor = p["hospital"], doctor_query(p["practitioner"])
    dates = sorted(set(dates) if dates is not None else {d for d, _ in p["slots"]})
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Authorization"] = f"Bearer {token}"
        return local.session

    def availability(day: str) -> dict:
        url = f"{stack.booking_url}/api/availability/{hospital}/{day}"
        r = session().get(url, params=doctor, timeout=30)
        r.raise_for_status()
        return r.json()

    listed = []
    if dates:
        query = {"hospital_id": hospital, **doctor, "date_from": dates[0], "date_to": dates[-1]}
        listed = _appointments(session(), f"{stack.booking_url}/api/appointments", query)
    with ThreadPoolExecutor(8) as pool:
        avails = dict(zip(dates, pool.map(availability, dates), strict=True))
    return judge(dates, listed, avails, p["capacity"])


def judge(
    dates: list[str],
    listed: list[dict],
    avails: dict[str, dict],
    planned: dict[tuple[str, str], int],
) -> dict:
    """The capacity check of `dates` from the appointments listed (the API's shape), each
    date's availability answer and the capacities planned before the bookings: slots with
    more confirmed appointments than their capacity (either one), slots where two confirmed
    appointments share a serial, slots whose availability counts differ (a warning)."""
    statuses = Counter(a["status"] for a in listed)
    per_slot: Counter[tuple[str, str]] = Counter()
    serials: dict[tuple[str, str], Counter[int]] = {}
    for a in listed:
        if a["status"] == "confirmed":
            place = (a["date"], a["slot"]["start"])
            per_slot[place] += 1
            serials.setdefault(place, Counter())[a.get("serial")] += 1
    overbooked, mismatched, dup_serials = [], [], []
    confirmed_total = 0
    for day in dates:
        slots = avails.get(day, {}).get("slots", {})
        starts = {start for d, start in per_slot if d == day} | set(slots)
        for start in sorted(starts):
            count = per_slot[(day, start)]
            confirmed_total += count
            counts = slots.get(start, {})
            plan_capacity = planned.get((day, start))
            capacity = counts.get("capacity", plan_capacity)
            if (capacity is not None and count > capacity) or (
                plan_capacity is not None and count > plan_capacity
            ):
                overbooked.append(
                    {"date": day, "slot": start, "confirmed": count, "capacity": capacity}
                )
            if counts.get("booked") != count:
                mismatched.append(
                    {
                        "date": day,
                        "slot": start,
                        "confirmed": count,
                        "availability_booked": counts.get("booked"),
                    }
                )
            dups = [s for s, n in serials.get((day, start), Counter()).items() if n > 1]
            if dups:
                dup_serials.append({"date": day, "slot": start, "serials": dups})
    return {
        "dates_checked": len(dates),
        "confirmed_total": confirmed_total,
        "statuses": dict(statuses),
        "overbooked": overbooked,
        "availability_mismatches": mismatched,
        "duplicate_serials": dup_serials,
        "ok": not overbooked and not dup_serials,
    }


def verdict(check: dict) -> str:
    if check["ok"]:
        return f"OK ({check['confirmed_total']} confirmed, none over capacity)"
    over, dups = len(check["overbooked"]), len(check["duplicate_serials"])
    return f"FAILED ({over} slots overbooked, {dups} slots with a shared serial)"
