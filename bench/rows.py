"""The bench's rows: what each round loads (the read rows of both hospitals, through the
gateway, directly and through a minimal Caddy; the booking rows, each booking into a hospital
of its own), and which processes' CPU each row reads."""

from __future__ import annotations

from dataclasses import dataclass

from bench.hospitals import (
    DOCTOR,
    DOCTOR_HOSPITAL,
    booking_hospital,
    create_hospital,
    plan,
    read_specs,
    slot_chunks,
)
from bench.load import Settings, Spec
from bench.minimal import MinimalCaddy
from bench.report import BOOKING_ROW
from bench.rounds import PROXIED_TRIVIAL_ROW, TRIVIAL_ROW
from devstack.servers import ServiceProcess
from devstack.stack import Stack

TRIVIAL_SPEC = Spec(TRIVIAL_ROW, "GET", "/ping")
# The trivial app behind a minimal Caddy (with the `available` rows): what no row through a
# proxy can beat on this machine.
PROXIED_TRIVIAL_SPEC = Spec(PROXIED_TRIVIAL_ROW, "GET", "/ping")


@dataclass
class Row:
    """A row of every round: where it is sent, which processes' CPU it reads (by role), and
    for a booking row, its plan (each round books into slots of its own)."""

    spec: Spec
    target: str
    base: str
    meters: dict[str, list[int]]
    booking: dict | None = None


def pids(*processes) -> list[int]:
    return [p.pid for p in processes if p is not None and p.pid is not None]


def booking_plan(stack: Stack, token: str, hospital_id: str, doctor: str | None, runs: int):
    """Create a booking rows' hospital and plan it: its slots cut into `runs` runs of dates,
    one per booking row of every round."""
    made = create_hospital(stack.gateway_url, token, booking_hospital(hospital_id, doctor))
    p = plan(stack, hospital_id, doctor)
    p["chunks"] = slot_chunks(p["slots"], runs)
    per_row = min(len(c) for c in p["chunks"])
    places = sum(p["capacity"].get(s, 0) for s in p["slots"])
    print(
        f"bench: hospital {hospital_id}{' with doctor ' + repr(doctor) if doctor else ''} "
        f"{made}: {len(p['slots'])} slots, {places} places, {runs} runs of >= {per_row} "
        "slots for the booking rows",
        flush=True,
    )
    return p


def build_rows(
    settings: Settings,
    stack: Stack,
    token: str,
    minimal: MinimalCaddy | None,
    stamp: int,
    proxied: tuple[ServiceProcess, MinimalCaddy] | None = None,
) -> list[Row]:
    """Every selected row of a round, in the order they run."""
    p = plan(stack)
    p_doctor = plan(stack, DOCTOR_HOSPITAL, DOCTOR)
    services = {"schedule": stack.services["schedule"], "booking": stack.services["booking"]}
    direct = {"schedule": stack.schedule_url, "booking": stack.booking_url}
    gateway = stack.gateway
    rows: list[Row] = []
    for spec, service in read_specs(p) + read_specs(p_doctor):
        answer = pids(services[service])
        rows.append(
            Row(spec, "gateway", stack.gateway_url, {"gateway": pids(gateway), "service": answer})
        )
        rows.append(Row(spec, "direct", direct[service], {"service": answer}))
        if spec.row == "available" and minimal is not None:
            meters = {"gateway": pids(minimal), "service": answer}
            rows.append(Row(spec, "minimal", minimal.url, meters))
    rows = [r for r in rows if settings.selects(r.spec.row)]
    if proxied is not None:  # the ceiling of any row through a proxy, first
        trivial, caddy = proxied
        meters = {"gateway": pids(caddy), "service": pids(trivial)}
        rows.insert(0, Row(PROXIED_TRIVIAL_SPEC, "minimal", caddy.url, meters))
    book_headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    for suffix, doctor in (("", None), (" (doctor)", DOCTOR)):
        name = BOOKING_ROW + suffix
        if not settings.selects(name):
            continue
        hospital_id = f"bench-bookings-{stamp}" + ("-doctor" if doctor else "")
        bp = booking_plan(stack, token, hospital_id, doctor, 2 * settings.rounds)
        spec = Spec(
            name,
            "POST",
            "/api/appointments",
            book_headers,
            hospital=hospital_id,
            practitioner=doctor,
        )
        answer = pids(services["booking"])
        rows.append(
            Row(
                spec,
                "gateway",
                stack.gateway_url,
                {"gateway": pids(gateway), "service": answer},
                bp,
            )
        )
        rows.append(Row(spec, "direct", stack.booking_url, {"service": answer}, bp))
    return rows
