"""In-memory fakes of the booking service's adapters, for fast tests of the service layer.

Each fake keeps the contract of the adapter it stands for (booking_service/adapters/repository.py,
booking_service/adapters/capacity.py, shared/capacity_reads.py, adapters/limits.py, the
integrations' store.py): the unique guards of MongoDB, the all-or-nothing places of the Lua
gate, the counts a reader sees, the conditional updates of the webhook deliveries.
`fake_context` builds the core's Context over them, `fake_services` what
booking_service/bootstrap.py builds (for `create_app(config, services=...)`). The real
adapters are tested against real servers in tests/integration and tests/e2e.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import datetime

import orjson
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from booking_service.adapters.capacity import Gate, SlotRecords
from booking_service.adapters.hold_store import HoldState, kept_until_ms
from booking_service.adapters.limits import Limiter
from booking_service.adapters.repository import (
    ABANDONED,
    ACTIVE,
    CANCELLED,
    CONFIRMED,
    PENDING,
    REJECTED,
    epoch_ms,
)
from booking_service.adapters.waitlist_store import LIVE_ENTRIES, EntryStatus
from booking_service.bootstrap import Services
from booking_service.core.context import Context
from booking_service.integrations.webhooks import store as webhooks_store
from booking_service.integrations.webhooks.service import Webhooks
from shared.capacity_reads import NOTHING_BOOKED, Snapshot
from shared.clock import utcnow
from shared.config import Config
from shared.configurations import ConfigurationCache
from shared.versions import EDITING, Published


def _appointment_matches(doc: dict, search) -> bool:
    """Whether an AppointmentSearch names `doc` (its fields, as the repository's query; with
    `moving`, the place fields name where the appointment is moving to)."""
    if search.moving:
        move = doc.get("moving")
        if not move or (search.booked_by is not None and doc["booked_by"] != search.booked_by):
            return False
        return doc["status"] in search.statuses and _place_matches(move, search)
    return _place_matches(doc, search) and _rest_matches(doc, search)


def _place_matches(where: dict, search) -> bool:
    for name in ("hospital_id", "practitioner_id", "slot_start", "date"):
        wanted = getattr(search, name)
        if wanted is not None and where.get(name) != wanted:
            return False
    if search.own_schedule and where.get("practitioner_id") is not None:
        return False
    if search.date is None:
        if search.date_from and where["date"] < search.date_from:
            return False
        if search.date_to and where["date"] > search.date_to:
            return False
    return True


def _rest_matches(doc: dict, search) -> bool:
    if search.booked_by is not None and doc.get("booked_by") != search.booked_by:
        return False
    if search.ids is not None and str(doc["_id"]) not in search.ids:
        return False
    return doc["status"] in search.statuses


class FakeAppointments:
    """AppointmentRepository in memory, with its two unique guards."""

    def __init__(self):
        self.docs: dict[ObjectId, dict] = {}

    def _unique(self, doc: dict, ignore: ObjectId | None = None) -> None:
        for other in self.docs.values():
            if other["_id"] == ignore:
                continue
            for guard in ("dup_guard", "serial_guard"):
                if other[guard] == doc[guard]:
                    raise DuplicateKeyError(f"{guard} {doc[guard]}")

    def insert_pending(self, doc: dict) -> None:
        self._unique(doc)
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    def _update(
        self, oid: ObjectId, status: str, changes: dict, event: dict | None = None
    ) -> dict | None:
        """A change of one document: its version grows, and its webhook event is recorded
        with it (booking_service/adapters/outbox.py)."""
        doc = self.docs.get(oid)
        if doc is None or doc["status"] != status:
            return None
        updated = {**doc, **changes, "version": doc.get("version", 0) + 1}
        if event is not None:
            updated["outbox"] = [*doc.get("outbox", []), orjson.dumps(event).decode()]
            updated["outbox_pending"] = 1
        self._unique(updated, ignore=oid)
        self.docs[oid] = updated
        return copy.deepcopy(updated)

    def confirm(
        self, oid: ObjectId, serial: int, guard: str, now: datetime, event=None
    ) -> dict | None:
        return self._update(
            oid,
            PENDING,
            {
                "status": CONFIRMED,
                "serial": serial,
                "serial_guard": guard,
                "updated_ms": epoch_ms(now),
            },
            event,
        )

    def close(
        self, oid, from_status: str, to_status: str, now: datetime, event=None, **extra
    ) -> dict | None:
        return self._update(
            oid,
            from_status,
            {
                "status": to_status,
                "dup_guard": f"x:{oid}",
                "serial_guard": f"x:{oid}",
                "updated_ms": epoch_ms(now),
                **extra,
            },
            event,
        )

    def mark_released(self, oids: list) -> None:
        for oid in oids:
            self.docs[oid]["released"] = True

    def for_rebuild(self, hospital_id: str, day: str) -> list[dict]:
        return [
            copy.deepcopy(d)
            for d in self.docs.values()
            if (d["hospital_id"], d["date"]) == (hospital_id, day)
            and d["status"] in ACTIVE
            or d.get("moving")
            and d["status"] == CONFIRMED
            and (d["moving"]["hospital_id"], d["moving"]["date"]) == (hospital_id, day)
        ]

    def begin_move(self, oid, at: tuple[str, str], move: dict) -> dict | None:
        doc = self.docs.get(oid)
        if (
            doc is None
            or doc["status"] != CONFIRMED
            or (doc["date"], doc["slot_start"]) != at
            or doc.get("moving")
            or doc.get("release_pending")
        ):
            return None
        doc["moving"] = copy.deepcopy(move)
        return copy.deepcopy(doc)

    def commit_move(self, oid, token: str, changes: dict, event=None) -> dict | None:
        doc = self.docs.get(oid)
        if (
            doc is None
            or doc["status"] != CONFIRMED
            or (doc.get("moving") or {}).get("token") != token
        ):
            return None
        self.docs[oid] = {k: v for k, v in doc.items() if k != "moving"}
        try:
            return self._update(oid, CONFIRMED, copy.deepcopy(changes), event)
        except DuplicateKeyError:
            self.docs[oid] = doc
            raise

    def abort_move(self, oid, token: str) -> bool:
        doc = self.docs.get(oid)
        if doc is None or (doc.get("moving") or {}).get("token") != token:
            return False
        del doc["moving"]
        return True

    def source_released(self, oid, token: str) -> None:
        doc = self.docs.get(oid)
        if doc and (doc.get("release_pending") or {}).get("token") == token:
            del doc["release_pending"]

    def stale_moves(self, before_ms: int, limit: int = 500) -> list[dict]:
        return copy.deepcopy(
            [
                d
                for d in self.docs.values()
                if (d.get("moving") or {}).get("started_ms", before_ms) < before_ms
            ][:limit]
        )

    def unreleased_sources(self, limit: int = 500) -> list[dict]:
        return copy.deepcopy([d for d in self.docs.values() if d.get("release_pending")][:limit])

    def get(self, oid: ObjectId) -> dict | None:
        doc = self.docs.get(oid)
        return copy.deepcopy(doc) if doc else None

    def move(self, oid, from_statuses, to_status: str, changes: dict, event=None) -> dict | None:
        doc = self.docs.get(oid)
        if doc is None or doc["status"] not in from_statuses:
            return None
        return self._update(oid, doc["status"], {"status": to_status, **changes}, event)

    def on_day(self, hospital_id: str, day: str, statuses) -> list[dict]:
        return [
            copy.deepcopy(d)
            for d in self.docs.values()
            if d["hospital_id"] == hospital_id and d["date"] == day and d["status"] in statuses
        ]

    def active_days(self, since: str) -> list[tuple[str, str | None, str]]:
        return sorted(
            {
                (d["hospital_id"], d.get("practitioner_id"), d["date"])
                for d in self.docs.values()
                if d["date"] >= since and d["status"] in ACTIVE
            },
            key=lambda t: (t[0], t[1] or "", t[2]),
        )

    def uses_hold(self, hold_id: str) -> bool:
        return any(
            d.get("hold_id") == hold_id and d["status"] in ACTIVE for d in self.docs.values()
        )

    def stale_pending(self, before: datetime, limit: int = 500) -> list[dict]:
        stale = [
            d for d in self.docs.values() if d["status"] == PENDING and d["created_at"] < before
        ]
        return copy.deepcopy(stale[:limit])

    def closed_since(self, since: datetime, limit: int = 5000) -> list[dict]:
        closed = [
            d
            for d in self.docs.values()
            if d["status"] in (CANCELLED, ABANDONED, REJECTED)
            and d["updated_ms"] >= epoch_ms(since)
            and not d.get("released")
        ]
        return copy.deepcopy(closed[:limit])

    def search(self, search, page: int, per_page: int) -> tuple[list[dict], int]:
        found = sorted(
            (d for d in self.docs.values() if _appointment_matches(d, search)),
            key=lambda d: (d["date"], d["slot_start"], d["serial"] or 0),
        )
        return copy.deepcopy(found[(page - 1) * per_page : page * per_page]), len(found)

    def marks(self, search) -> list[tuple[str, int, int]]:
        return [
            (str(d["_id"]), d.get("version", 0), d.get("updated_ms", 0))
            for d in self.docs.values()
            if _appointment_matches(d, search)
        ]


class FakeEvents:
    """LiveEvents in memory: the announcements made, in order."""

    def __init__(self):
        self.sent: list[tuple] = []

    def availability(self, hospital_id: str, day: str, practitioner_id) -> None:
        self.sent.append(("availability", hospital_id, day, practitioner_id))

    def queue(self, hospital_id: str, day: str, practitioner_id) -> None:
        self.sent.append(("queue", hospital_id, day, practitioner_id))


class FakeCapacity:
    """CapacityRecords in memory: a slot's places, field -> (serial, units, expires_ms: 0 for
    an appointment), per hospital, doctor (or None) and date; holds past `now_ms()` hold
    nothing, as in the gate's scripts."""

    def __init__(self, events: FakeEvents | None = None):
        self.events = events if events is not None else FakeEvents()
        self.places: dict[tuple, dict[str, tuple[int, int, int]]] = {}
        self.ready: set[tuple] = set()
        self.complete = True
        self.leader: str | None = None
        self.fail_next_reserve = False
        self.clock_ms: int | None = None  # None: the real clock
        self.quota: dict[str, dict[str, int]] = {}
        # The published version of a hospital (the FakeReader's), for `expect_version`.
        self.published_version: Callable[[str], int | None] = lambda hospital_id: None

    @property
    def holds(self) -> dict[tuple, dict[str, tuple[int, int]]]:
        """Each slot's places as the holds hashes have them: field -> (serial, units)."""
        return {
            key: {field: (serial, units) for field, (serial, units, _) in held.items()}
            for key, held in self.places.items()
        }

    def now_ms(self) -> int:
        return self.clock_ms if self.clock_ms is not None else int(time.time() * 1000)

    def _live(self, key: tuple) -> dict[str, tuple[int, int, int]]:
        held = self.places.setdefault(key, {})
        now = self.now_ms()
        for field in [f for f, (_, _, exp) in held.items() if exp and exp <= now]:
            del held[field]
        return held

    def counts(self, hospital_id: str, day: str, practitioner_id=None) -> dict[str, int]:
        """Units per slot: booked by appointments, `h:` held, `o:` offered."""
        out: dict[str, int] = {}
        for key in list(self.places):
            hid, pid, d, slot = key
            if (hid, pid, d) != (hospital_id, practitioner_id, day):
                continue
            for field, (_, units, expires) in self._live(key).items():
                name = slot if not expires else "h:" + slot
                out[name] = out.get(name, 0) + units
                if expires and field.startswith("o:"):
                    out["o:" + slot] = out.get("o:" + slot, 0) + units
        return out

    def reserve(
        self,
        hospital_id,
        day,
        slot,
        appointment_id,
        capacity,
        ttl,
        *,
        units=1,
        practitioner_id=None,
        expect_version=None,
    ) -> tuple[int, int]:
        version = self.published_version(hospital_id)  # read first, as the pipeline does
        outcome, value, _ = self._take(
            hospital_id, day, slot, appointment_id, capacity, units, practitioner_id, 0
        )
        if expect_version is not None and version != expect_version:
            return Gate.CHANGED, 0
        return outcome, value

    def hold(
        self, hospital_id, day, slot, field, capacity, ttl, *, units, practitioner_id, life_ms
    ) -> tuple[int, int, int]:
        return self._take(hospital_id, day, slot, field, capacity, units, practitioner_id, life_ms)

    def _take(self, hospital_id, day, slot, field, capacity, units, practitioner_id, life):
        if (hospital_id, practitioner_id, day) not in self.ready:
            return Gate.NOT_READY, 0, 0
        held = self._live((hospital_id, practitioner_id, day, slot))
        if field in held:
            return Gate.TAKEN, held[field][0], held[field][2]
        taken = sum(u for _, u, _ in held.values())
        if taken + units > capacity:
            return Gate.FULL, taken, 0
        used = {serial for serial, _, _ in held.values()}
        serial = next(n for n in range(1, capacity + 2) if n not in used)
        expires = self.now_ms() + life if life else 0
        held[field] = (serial, units, expires)
        self.events.availability(hospital_id, day, practitioner_id)  # as the script does
        return Gate.TAKEN, serial, expires

    def take_hold(
        self, hospital_id, day, slot, field, appointment_id, ttl, practitioner_id,
        expect_version=None,
    ) -> tuple[int, int]:  # fmt: skip
        version = self.published_version(hospital_id)  # read first, as the pipeline does
        answer = self._take_hold(hospital_id, day, slot, field, appointment_id, practitioner_id)
        if expect_version is not None and version != expect_version:
            return Gate.CHANGED, 0
        return answer

    def _take_hold(self, hospital_id, day, slot, field, appointment_id, practitioner_id):
        if (hospital_id, practitioner_id, day) not in self.ready:
            return Gate.NOT_READY, 0
        held = self._live((hospital_id, practitioner_id, day, slot))
        if appointment_id in held:
            return Gate.TAKEN, held[appointment_id][0]
        if field not in held:
            return Gate.FULL, 0
        serial, units, _ = held.pop(field)
        held[appointment_id] = (serial, units, 0)
        self.events.availability(hospital_id, day, practitioner_id)
        return Gate.TAKEN, serial

    def pass_hold(
        self, hospital_id, day, slot, field, to_field, ttl, practitioner_id, life_ms
    ) -> tuple[int, int, int]:
        if (hospital_id, practitioner_id, day) not in self.ready:
            return Gate.NOT_READY, 0, 0
        held = self._live((hospital_id, practitioner_id, day, slot))
        if field not in held or not held[field][2]:
            return Gate.FULL, 0, 0
        serial, units, _ = held.pop(field)
        expires = self.now_ms() + life_ms
        held[to_field] = (serial, units, expires)
        self.events.availability(hospital_id, day, practitioner_id)
        return Gate.TAKEN, serial, expires

    def claim_hold_quota(self, user_id, hold_id, expires_ms, limit) -> bool:
        mine = self.quota.setdefault(user_id, {})
        now = self.now_ms()
        for hid in [h for h, exp in mine.items() if exp <= now]:
            del mine[hid]
        if len(mine) >= limit:
            return False
        mine[hold_id] = expires_ms
        return True

    def restore_hold_quota(self, user_id, live) -> None:
        self.quota.setdefault(user_id, {}).update(dict(live))

    def holds_place(self, hospital_id, day, slot, field, practitioner_id) -> bool | None:
        if (hospital_id, practitioner_id, day) not in self.ready:
            return None
        return field in self._live((hospital_id, practitioner_id, day, slot))

    def free_hold_quota(self, user_id, hold_id) -> None:
        self.quota.get(user_id, {}).pop(hold_id, None)

    def free(self, hospital_id, day, slot, appointment_id, practitioner_id=None) -> bool:
        held = self._live((hospital_id, practitioner_id, day, slot))
        released = held.pop(appointment_id, None) is not None
        if released:
            self.events.availability(hospital_id, day, practitioner_id)
        return released

    def rebuild(
        self, hospital_id: str, day: str, slots: list[SlotRecords], ttl: int, practitioner_id=None
    ) -> bool:
        if (hospital_id, practitioner_id, day) in self.ready:
            return False
        now = self.now_ms()
        for records in slots:
            held = {oid: (serial, units, 0) for oid, serial, units in records.held}
            taken = sum(units for _, units, _ in held.values())
            used = {serial for serial, _, _ in held.values()}
            for field, units, expires, *always in records.pending:
                fits = bool(always and always[0]) or taken + units <= records.capacity
                if not fits or (expires and expires <= now):
                    continue
                serial = next(n for n in range(1, len(used) + 2) if n not in used)
                held[field] = (serial, units, expires)
                used.add(serial)
                taken += units
            self.places[(hospital_id, practitioner_id, day, records.slot)] = held
        self.ready.add((hospital_id, practitioner_id, day))
        self.events.availability(hospital_id, day, practitioner_id)
        return True

    def lose_everything(self) -> None:
        """What a Redis flush does."""
        self.places.clear()
        self.ready.clear()
        self.quota.clear()
        self.complete = False

    def begin_full_rebuild(self) -> str:
        return "token"

    def finish_full_rebuild(self, token: str) -> bool:
        self.complete = True
        return True

    def records_complete(self) -> bool:
        return self.complete

    def lead(self, lock_key: str, identity: str, ttl_ms: int) -> bool:
        if self.leader in (None, identity):
            self.leader = identity
            return True
        return False


class FakeReader:
    """CapacityReader over a FakeCapacity and a table of published versions."""

    def __init__(self, capacity: FakeCapacity):
        self.capacity = capacity
        self.versions: dict[str, object] = {}  # hospital -> version, EDITING, or absent
        capacity.published_version = lambda hospital_id: self.published(hospital_id).version

    def published_and_counts(
        self, hospital_id: str, dates: list[str], practitioner_id=None
    ) -> Snapshot:
        counts = {}
        for day in dates:
            if (hospital_id, practitioner_id, day) in self.capacity.ready or self.capacity.complete:
                counts[day] = (
                    self.capacity.counts(hospital_id, day, practitioner_id) or NOTHING_BOOKED
                )
            else:
                counts[day] = None
        raw = self.versions.get(hospital_id)
        if isinstance(raw, int):
            raw = str(raw).encode()
        return Snapshot(Published.from_raw(raw), counts)

    def published(self, hospital_id: str) -> Published:
        return self.published_and_counts(hospital_id, []).published

    def for_answer(self, hospital_id: str, dates: list[str], practitioner_id=None) -> Snapshot:
        return self.published_and_counts(hospital_id, dates, practitioner_id)


class FakeCounters:
    """RedisCounters in memory (windows never end unless a test ends them)."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def hit(self, key: str, window: int) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    def seconds_left(self, key: str) -> int | None:
        return 60 if key in self.counts else None

    def take_back(self, key: str) -> None:
        self.counts[key] -= 1


class FakeIdempotency:
    """IdempotencyRepository in memory."""

    def __init__(self):
        self.records: dict[str, dict] = {}

    def claim(self, key: str, fingerprint: str, now: datetime) -> dict | None:
        if key in self.records:
            return dict(self.records[key])
        self.records[key] = {
            "fingerprint": fingerprint,
            "state": "in_progress",
            "created_ms": epoch_ms(now),
        }
        return None

    def take_over(self, key, fingerprint, stale_before, now) -> bool:
        record = self.records.get(key)
        if (
            record
            and record["state"] == "in_progress"
            and record["created_ms"] < epoch_ms(stale_before)
        ):
            record.update(fingerprint=fingerprint, created_ms=epoch_ms(now))
            return True
        return False

    def complete(self, key: str, status: int, body: dict) -> None:
        self.records[key].update(state="done", status=status, body=body)

    def forget(self, key: str) -> None:
        if self.records.get(key, {}).get("state") == "in_progress":
            del self.records[key]


class FakeUsers:
    """UserRepository in memory (emails unique)."""

    def __init__(self):
        self.by_id: dict[ObjectId, dict] = {}

    def by_email(self, email: str) -> dict | None:
        wanted = email.strip().lower()
        return next((u for u in self.by_id.values() if u["email"] == wanted), None)

    def insert(self, doc: dict) -> bool:
        if self.by_email(doc["email"]) is not None:
            return False
        self.by_id[doc["_id"]] = doc
        return True


class FakeHolds:
    """HoldRepository in memory."""

    def __init__(self):
        self.docs: dict[ObjectId, dict] = {}

    def insert(self, doc: dict) -> None:
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    def get(self, oid) -> dict | None:
        doc = self.docs.get(oid)
        return copy.deepcopy(doc) if doc else None

    def delete_ended(self, before_ms: int) -> int:
        gone = [oid for oid, d in self.docs.items() if d.get("ended_ms", before_ms) < before_ms]
        for oid in gone:
            del self.docs[oid]
        return len(gone)

    def end(self, oid, state: str, now: datetime, **extra) -> dict | None:
        doc = self.docs.get(oid)
        if doc is None or doc["state"] != HoldState.HELD:
            return None
        doc.update(state=state, ended_ms=epoch_ms(now), **extra)
        return copy.deepcopy(doc)

    def live_on(self, hospital_id: str, day: str, now_ms: int) -> list[dict]:
        return copy.deepcopy(
            sorted(
                (
                    d
                    for d in self.docs.values()
                    if (d["hospital_id"], d["date"], d["state"])
                    == (hospital_id, day, HoldState.HELD)
                    and kept_until_ms(d) > now_ms
                ),
                key=lambda d: d["created_ms"],
            )
        )

    def live_days(self, now_ms: int) -> set[tuple]:
        return {
            (d["hospital_id"], d.get("practitioner_id"), d["date"])
            for d in self.docs.values()
            if d["state"] == HoldState.HELD and kept_until_ms(d) > now_ms
        }

    def expired(self, now_ms: int, limit: int = 500) -> list[dict]:
        return copy.deepcopy(
            [
                d
                for d in self.docs.values()
                if d["state"] == HoldState.HELD and d["expires_ms"] <= now_ms
            ][:limit]
        )

    def live(self, now_ms: int, user_id: str | None = None) -> list[dict]:
        return copy.deepcopy(
            [
                d
                for d in self.docs.values()
                if d["state"] == HoldState.HELD
                and kept_until_ms(d) > now_ms
                and user_id in (None, d["user_id"])
            ]
        )

    def search(self, query: dict, now_ms: int, page: int, per_page: int, live: bool = False):
        """The plain fields of `query`, and `date` as a {"$gte", "$lte"} span."""

        def matches(doc: dict) -> bool:
            for name, wanted in query.items():
                if name == "date":
                    low, high = wanted.get("$gte", ""), wanted.get("$lte", "9999")
                    if not low <= doc["date"] <= high:
                        return False
                elif doc.get(name) != wanted:
                    return False
            return not live or kept_until_ms(doc) > now_ms

        found = sorted(
            (d for d in self.docs.values() if matches(d)), key=lambda d: (d["created_ms"], d["_id"])
        )
        return copy.deepcopy(found[(page - 1) * per_page : page * per_page]), len(found)


class FakeWaitlist:
    """WaitlistRepository in memory, with its unique `wait_guard`."""

    def __init__(self):
        self.docs: dict[ObjectId, dict] = {}

    def insert(self, doc: dict) -> None:
        for guard in ("wait_guard", "quota_guard"):
            if guard in doc and any(d.get(guard) == doc[guard] for d in self.docs.values()):
                raise DuplicateKeyError(f"{guard} {doc[guard]}")
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    def waits(self, wait_guard: str) -> bool:
        return any(d["wait_guard"] == wait_guard for d in self.docs.values())

    def get(self, oid) -> dict | None:
        doc = self.docs.get(oid)
        return copy.deepcopy(doc) if doc else None

    def waiting(self, hospital_id, practitioner_id, day) -> list[dict]:
        return copy.deepcopy(
            sorted(
                (
                    d
                    for d in self.docs.values()
                    if (d["hospital_id"], d.get("practitioner_id"), d["date"], d["status"])
                    == (hospital_id, practitioner_id, day, EntryStatus.WAITING)
                ),
                key=lambda d: (d["created_ms"], d["_id"]),
            )
        )

    def move(self, oid, from_status, to_status, changes, event=None, **match) -> dict | None:
        doc = self.docs.get(oid)
        if doc is None or doc["status"] != from_status:
            return None
        if any(doc.get(k) != v for k, v in match.items()):
            return None
        if to_status not in LIVE_ENTRIES:
            ended_ms = changes.get("updated_ms") or epoch_ms(utcnow())  # the change's own time
            changes = {
                **changes,
                "wait_guard": f"x:{oid}",
                "quota_guard": f"x:{oid}",
                "ended_ms": ended_ms,
            }
        doc.update(status=to_status, **copy.deepcopy(changes))
        if event is not None:
            doc["outbox"] = [*doc.get("outbox", []), orjson.dumps(event).decode()]
            doc["outbox_pending"] = 1
        return copy.deepcopy(doc)

    def delete_ended(self, before_ms: int) -> int:
        gone = [
            oid
            for oid, d in self.docs.items()
            if d.get("ended_ms", before_ms) < before_ms and d.get("outbox_pending") != 1
        ]
        for oid in gone:
            del self.docs[oid]
        return len(gone)

    def days_waiting(self, since: str) -> list[tuple]:
        return sorted(
            {
                (d["hospital_id"], d.get("practitioner_id"), d["date"])
                for d in self.docs.values()
                if d["status"] == EntryStatus.WAITING and d["date"] >= since
            },
            key=lambda t: (t[0], t[1] or "", t[2]),
        )

    def stale(self, status: str, field: str, before_ms: int, limit: int = 500) -> list[dict]:
        return copy.deepcopy(
            [
                d
                for d in self.docs.values()
                if d["status"] == status and d.get(field) is not None and d[field] < before_ms
            ][:limit]
        )

    def search(self, search, page: int, per_page: int) -> tuple[list[dict], int]:
        fields = ("user_id", "hospital_id", "practitioner_id", "date", "status")
        wanted = {name: getattr(search, name) for name in fields if getattr(search, name)}
        found = sorted(
            (d for d in self.docs.values() if all(d.get(k) == v for k, v in wanted.items())),
            key=lambda d: (d["created_ms"], d["_id"]),
            reverse=True,
        )
        return copy.deepcopy(found[(page - 1) * per_page : page * per_page]), len(found)


class FakeSchedules:
    """The schedule source: configuration documents by hospital, as the schedule service
    answers them; `publish` also sets the version readers see."""

    def __init__(self, reader: FakeReader):
        self.docs: dict[str, dict] = {}
        self.reader = reader
        self.loads = 0

    def publish(self, doc: dict) -> None:
        self.docs[doc["hospital_id"]] = copy.deepcopy(doc)
        self.reader.versions[doc["hospital_id"]] = doc["version"]

    def begin_edit(self, hospital_id: str) -> None:
        self.reader.versions[hospital_id] = EDITING

    def load(self, hospital_id: str) -> dict | None:
        self.loads += 1
        return copy.deepcopy(self.docs.get(hospital_id))


def fake_context(config: Config | None = None) -> tuple[Context, FakeSchedules]:
    """A booking-service Context over fakes, and its schedule source."""
    cfg = config or Config(bcrypt_rounds=4, pending_timeout_seconds=30)
    events = FakeEvents()
    capacity = FakeCapacity(events)
    reader = FakeReader(capacity)
    schedules = FakeSchedules(reader)
    ctx = Context(
        config=cfg,
        appointments=FakeAppointments(),
        capacity=capacity,
        reader=reader,
        configurations=ConfigurationCache(schedules.load),
        users=FakeUsers(),
        idempotency=FakeIdempotency(),
        limiter=Limiter(FakeCounters(), cfg),
        events=events,
        holds=FakeHolds(),
        waitlist=FakeWaitlist(),
    )
    return ctx, schedules


# --- The integrations' stores -------------------------------------------------------------


class FakeFeeds:
    """FeedRepository in memory (booking_service/integrations/calendars/store.py)."""

    def __init__(self):
        self.docs: dict[ObjectId, dict] = {}

    def insert(self, doc: dict) -> None:
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    def get(self, oid: ObjectId) -> dict | None:
        doc = self.docs.get(oid)
        return copy.deepcopy(doc) if doc else None

    def revoke(self, oid: ObjectId, changes: dict) -> bool:
        doc = self.docs.get(oid)
        if doc is None or doc.get("revoked_ms") is not None:
            return False
        doc.update(changes, token_sha256=None)
        return True

    def search(self, filters: dict, page: int, per_page: int) -> tuple[list[dict], int]:
        found = [
            {k: v for k, v in d.items() if k != "token_sha256"}
            for d in self.docs.values()
            if d.get("revoked_ms") is None and all(d.get(k) == v for k, v in filters.items())
        ]
        found.sort(key=lambda d: (d["created_ms"], d["_id"]), reverse=True)
        return copy.deepcopy(found[(page - 1) * per_page : page * per_page]), len(found)


class FakeHooks:
    """WebhookStore in memory (booking_service/integrations/webhooks/store.py)."""

    def __init__(self):
        self.docs: dict[str, dict] = {}

    def insert(self, doc: dict) -> None:
        self.docs[str(doc["_id"])] = copy.deepcopy(doc)

    def get(self, webhook_id: str) -> dict | None:
        return copy.deepcopy(self.docs.get(webhook_id))

    def active(self) -> list[dict]:
        found = [d for d in self.docs.values() if d["active"]]
        return copy.deepcopy(sorted(found, key=lambda d: d["created_ms"]))

    def count_active(self) -> int:
        return len(self.active())

    def deactivate(self, webhook_id: str, now_ms: int) -> bool:
        doc = self.docs.get(webhook_id)
        if doc is None:
            return False
        doc.update(active=False, deleted_ms=now_ms)
        doc.pop("secret", None)
        doc.pop("secret_salt", None)
        return True


class FakeDeliveries:
    """DeliveryStore in memory: the queue and the log, each change conditional as the real
    one's (state, attempt count, lease)."""

    def __init__(self):
        self.docs: dict[str, dict] = {}

    def insert(self, doc: dict) -> bool:
        if doc["_id"] in self.docs:
            return False
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        return True

    def _pending(self, **fields) -> list[dict]:
        return [
            d
            for d in self.docs.values()
            if d["state"] == webhooks_store.PENDING
            and all(d.get(k) == v for k, v in fields.items())
        ]

    def due(self, now_ms: int, limit: int, exclude: set[str] | None = None) -> list[dict]:
        found = [
            d
            for d in self._pending()
            if d["next_attempt_ms"] <= now_ms
            and d["lease_until_ms"] <= now_ms
            and d["webhook_id"] not in (exclude or ())
        ]
        found.sort(key=lambda d: (d["next_attempt_ms"], d["seq"]))
        return copy.deepcopy(found[:limit])

    def earlier_pending(self, webhook_id: str, subject: str, seq: int) -> dict | None:
        found = [d for d in self._pending(webhook_id=webhook_id, subject=subject) if d["seq"] < seq]
        return copy.deepcopy(min(found, key=lambda d: d["seq"])) if found else None

    def _leased(self, doc: dict, now_ms: int | None = None, owner=None) -> dict | None:
        """The stored delivery when it is still the one read: pending, the same attempt count
        (and lease owner; and its lease run out by `now_ms`), else None."""
        mine = self.docs.get(doc["_id"])
        if (
            mine is None
            or mine["state"] != webhooks_store.PENDING
            or mine["attempt_count"] != doc["attempt_count"]
            or (owner is not None and mine.get("lease_owner") != owner)
            or (now_ms is not None and mine["lease_until_ms"] > now_ms)
        ):
            return None
        return mine

    def defer(self, delivery_id: str, until_ms: int, now_ms: int) -> None:
        doc = self.docs[delivery_id]
        if doc["state"] == webhooks_store.PENDING and doc["lease_until_ms"] <= now_ms:
            doc["next_attempt_ms"] = until_ms

    def claim(self, doc: dict, now_ms: int, lease_ms: int, owner: str) -> dict | None:
        mine = self._leased(doc, now_ms)
        if mine is None:
            return None
        mine.update(lease_until_ms=now_ms + lease_ms, lease_owner=owner, lease_at_ms=now_ms)
        return copy.deepcopy(mine)

    @staticmethod
    def _finish(mine: dict, attempt_text: str, changes: dict) -> None:
        mine["attempts"].append(attempt_text)
        mine["attempt_count"] += 1
        mine.update(changes, lease_until_ms=0)
        mine.pop("lease_owner", None)

    def record(self, doc: dict, owner: str, attempt_text: str, changes: dict) -> bool:
        mine = self._leased(doc, owner=owner)
        if mine is None:
            return False
        self._finish(mine, attempt_text, changes)
        return True

    def expire_lease(self, doc: dict, attempt_text: str, changes: dict, now_ms: int) -> dict | None:
        mine = self._leased(doc, now_ms, owner=doc["lease_owner"])
        if mine is None:
            return None
        self._finish(mine, attempt_text, changes)
        return copy.deepcopy(mine)

    def end_unsent(self, delivery_id: str, reason: str, now_ms: int) -> None:
        doc = self.docs[delivery_id]
        if doc["state"] == webhooks_store.PENDING and doc["lease_until_ms"] <= now_ms:
            doc.update(state=webhooks_store.DEAD, dead_reason=reason, ended_ms=now_ms)

    def end_for_webhook(self, webhook_id: str, reason: str, now_ms: int) -> int:
        ended = 0
        for doc in self._pending(webhook_id=webhook_id):
            if doc["lease_until_ms"] <= now_ms:
                doc.update(state=webhooks_store.DEAD, dead_reason=reason, ended_ms=now_ms)
                ended += 1
        return ended

    def page(
        self, webhook_id: str, state: str | None, page: int, per_page: int
    ) -> tuple[list[dict], int]:
        found = [
            {k: v for k, v in d.items() if k != "payload"}
            for d in self.docs.values()
            if d["webhook_id"] == webhook_id and state in (None, d["state"])
        ]
        found.sort(key=lambda d: (d["created_ms"], d["seq"], d["_id"]), reverse=True)
        return copy.deepcopy(found[(page - 1) * per_page : page * per_page]), len(found)


class FakeSources:
    """OutboxSources in memory: the outboxes of the fakes' appointments and waitlist entries
    (or of documents of their own, made by `push`). `clear` keeps the real adapter's rule:
    relayed events go, one pushed since the read stays."""

    KINDS = ("appointment", "waitlist")

    def __init__(
        self, appointments: FakeAppointments | None = None, waitlist: FakeWaitlist | None = None
    ):
        self.docs = {
            "appointment": (appointments or FakeAppointments()).docs,
            "waitlist": (waitlist or FakeWaitlist()).docs,
        }

    def push(self, kind: str, event: dict, oid: ObjectId | None = None) -> dict:
        """What a change's update does (booking_service/adapters/outbox.py): the event into
        the document's outbox (`oid`'s, else the kind's first, made when there is none), an
        appointment's version one more; returns the stored document."""
        docs = self.docs[kind]
        if oid is None:
            oid = next(iter(docs), None) or ObjectId()
        doc = docs.setdefault(
            oid, {"_id": oid, "version": 0} if kind == "appointment" else {"_id": oid}
        )
        doc["outbox"] = [*doc.get("outbox", []), orjson.dumps(event).decode()]
        if kind == "appointment":
            doc["version"] = doc.get("version", 0) + 1
        doc["outbox_pending"] = 1
        return doc

    def pending(self, kind: str, limit: int) -> list[dict]:
        found = [d for d in self.docs[kind].values() if d.get("outbox_pending") == 1]
        fields = ("_id", "outbox", "version")
        return [copy.deepcopy({k: d[k] for k in fields if k in d}) for d in found[:limit]]

    def clear(self, kind: str, doc: dict, relayed: list[str]) -> None:
        mine = self.docs[kind].get(doc["_id"])
        if mine is None:
            return
        unchanged = mine.get("version") == doc.get("version")
        if kind == "appointment" and unchanged and mine.get("outbox_pending") == 1:
            del mine["outbox_pending"]
            mine.pop("outbox", None)
            return
        if relayed and "outbox" in mine:
            mine["outbox"] = [t for t in mine["outbox"] if t not in relayed]
        if mine.get("outbox") == [] and mine.get("outbox_pending") == 1:
            del mine["outbox_pending"]


class FakeSender:
    """Answers attempts from a script of statuses (None: no answer) and records them."""

    def __init__(self, *statuses: int | None):
        self.statuses = list(statuses)
        self.sent: list[tuple[str, bytes, dict]] = []

    def post(self, url, body, headers, timeout) -> tuple[int | None, str | None]:
        self.sent.append((url, body, headers))
        status = self.statuses.pop(0) if self.statuses else 200
        return (None, "connection error: refused") if status is None else (status, None)


def fake_webhooks(
    config: Config,
    sender: FakeSender | None = None,
    appointments: FakeAppointments | None = None,
    waitlist: FakeWaitlist | None = None,
) -> Webhooks:
    """The webhooks' stores and sender in memory (the outboxes: those of `appointments` and
    `waitlist`, or their own)."""
    return Webhooks(
        config=config,
        hooks=FakeHooks(),
        deliveries=FakeDeliveries(),
        sources=FakeSources(appointments, waitlist),
        sender=sender or FakeSender(),
    )


def fake_services(ctx: Context, sender: FakeSender | None = None) -> Services:
    """What booking_service.bootstrap builds, over fakes: `ctx` (fake_context's), the feeds and
    the webhooks' stores in memory, the webhooks relaying `ctx`'s outboxes."""
    webhooks = fake_webhooks(ctx.config, sender, ctx.appointments, ctx.waitlist)
    return Services(context=ctx, feeds=FakeFeeds(), webhooks=webhooks)
