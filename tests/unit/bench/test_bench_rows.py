"""The bench's rows and targets (bench/hospitals.py, bench/report.py, bench/load.py): how the
booking rows share out the slots, and how targets read the summaries."""

from __future__ import annotations

import pytest

from bench.hospitals import booking_pattern, judge, slot_chunks
from bench.load import Settings
from bench.report import targets
from bench.rounds import TRIVIAL_ROW, Summary


def slots(days: int, per_day: int) -> list[tuple[str, str]]:
    return [
        (f"2027-01-{d:02d}", f"{8 + h:02d}:00") for d in range(1, days + 1) for h in range(per_day)
    ]


def test_booking_rows_get_runs_of_whole_dates_of_their_own():
    chunks = slot_chunks(slots(10, 3), 4)
    dates = [sorted({d for d, _ in c}) for c in chunks]
    assert [len(d) for d in dates] == [3, 3, 2, 2]
    assert sum(len(c) for c in chunks) == 30
    for a, b in zip(dates, dates[1:], strict=False):
        assert a[-1] < b[0]


def test_more_runs_than_dates_leaves_the_last_runs_empty():
    assert [len(c) for c in slot_chunks(slots(2, 2), 3)] == [2, 2, 0]


def test_the_pattern_bursts_into_the_first_three_slots():
    run = slots(300, 1)  # 297 to spread over: three bursts, one into each hot slot
    pattern = booking_pattern(run)
    assert pattern[:96] == run[3:99]
    assert pattern[96:112] == [run[0]] * 16
    assert pattern[208:224] == [run[1]] * 16
    assert pattern[320:336] == [run[2]] * 16
    assert len(pattern) == 297 + 3 * 16
    assert set(pattern) == set(run)


def summary(row: str, target: str, ratio: float | None, **cpu_us: float) -> Summary:
    return Summary(row, target, 3, 100.0, ratio, 1.0, 2.0, 300, {}, 0, 0, dict(cpu_us))


def test_targets_of_rows_that_did_not_run_are_skipped():
    found = {t["target"]: t for t in targets([summary("available", "gateway", 0.36)])}
    assert found["available via gateway >= 0.35 x trivial"]["met"] is True
    assert found["bookings via gateway >= 0.12 x trivial"]["met"] is None


def test_cpu_targets_compare_cpu_per_request():
    found = {
        t["target"]: t
        for t in targets(
            [
                summary(TRIVIAL_ROW, "direct", None, service=200.0),
                summary("available", "gateway", 0.3, gateway=260.0, service=300.0),
                summary("available", "direct", 0.5, service=300.0),
                summary("available", "minimal", 0.4, gateway=200.0, service=290.0),
            ]
        )
    }
    gateway = found["gateway CPU/request (available) <= 1.25 x minimal Caddy's"]
    assert (gateway["value"], gateway["met"]) == (pytest.approx(1.3), False)
    service = found["schedule CPU/request (available, direct) <= 1.4 x trivial app's"]
    assert (service["value"], service["met"]) == (pytest.approx(1.5), False)
    assert found["available via gateway >= 0.35 x trivial"]["met"] is False


def test_bench_rows_selects_rows_by_substring(monkeypatch):
    monkeypatch.setenv("BENCH_ROWS", "available, appointments")
    settings = Settings()
    assert settings.rows == ["available", "appointments"]
    assert settings.selects("available (doctor)")
    assert settings.selects("appointments POST")
    assert not settings.selects("availability/bulk(60)")
    monkeypatch.delenv("BENCH_ROWS")
    assert Settings().selects("calendar?days=1")


def appointment(day: str, start: str, serial: int, status: str = "confirmed") -> dict:
    return {
        "appointment_id": f"{day}-{start}-{serial}-{status}",
        "status": status,
        "date": day,
        "slot": {"start": start},
        "serial": serial,
    }


def availability(**booked: tuple[int, int]) -> dict:
    """An availability answer: slot "HHMM" -> (booked, capacity)."""
    return {
        "slots": {f"{k[:2]}:{k[2:]}": {"booked": b, "capacity": c} for k, (b, c) in booked.items()}
    }


DAY = "2027-01-05"


def test_the_capacity_check_passes_slots_within_their_capacity():
    listed = [appointment(DAY, "08:00", n) for n in (1, 2)] + [
        appointment(DAY, "08:00", 3, "cancelled"),
        appointment(DAY, "09:00", 1),
    ]
    avails = {DAY: availability(**{"0800": (2, 2), "0900": (1, 15)})}
    planned = {(DAY, "08:00"): 2, (DAY, "09:00"): 15}
    check = judge([DAY], listed, avails, planned)
    assert check["ok"] is True
    assert check["confirmed_total"] == 3
    assert check["statuses"] == {"confirmed": 3, "cancelled": 1}
    assert check["availability_mismatches"] == []


def test_the_capacity_check_finds_a_slot_over_its_capacity():
    listed = [appointment(DAY, "08:00", n) for n in (1, 2, 3)]
    avails = {DAY: availability(**{"0800": (2, 2)})}
    check = judge([DAY], listed, avails, {(DAY, "08:00"): 2})
    assert check["ok"] is False
    assert check["overbooked"] == [{"date": DAY, "slot": "08:00", "confirmed": 3, "capacity": 2}]
    assert check["availability_mismatches"][0]["availability_booked"] == 2


def test_the_planned_capacity_counts_even_when_availability_claims_more():
    listed = [appointment(DAY, "08:00", n) for n in range(1, 17)]
    avails = {DAY: availability(**{"0800": (16, 20)})}
    check = judge([DAY], listed, avails, {(DAY, "08:00"): 15})
    assert check["ok"] is False
    assert len(check["overbooked"]) == 1


def test_the_capacity_check_finds_a_shared_serial():
    listed = [appointment(DAY, "08:00", 1), {**appointment(DAY, "08:00", 1), "appointment_id": "x"}]
    avails = {DAY: availability(**{"0800": (2, 15)})}
    check = judge([DAY], listed, avails, {(DAY, "08:00"): 15})
    assert check["ok"] is False
    assert check["duplicate_serials"] == [{"date": DAY, "slot": "08:00", "serials": [1]}]
