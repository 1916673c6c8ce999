"""Hospital configurations, compiled once and kept per process, used only while current.

Both services use it, each with its own source: the schedule service reads MongoDB, the
booking service the schedule service's API. A cached configuration is used only when the
published version (read with the counts, shared/capacity_reads.py) is exactly its version;
anything else (another version, an edit in progress, Redis unreadable) goes to the source.
Only hospitals that exist are kept, under the id they were asked by and answered for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import (
    AppointmentTypeNotFound,
    HospitalNotFound,
    PractitionerNotFound,
    ServiceUnavailable,
)
from .ids import is_id
from .slots import (
    AppointmentType,
    Practitioner,
    Schedule,
    compile_appointment_types,
    compile_practitioner,
    compile_schedule,
)
from .versions import Published

log = logging.getLogger(__name__)

# How long a hold keeps its place when the hospital does not say (`hold_seconds`).
DEFAULT_HOLD_SECONDS = 300


@dataclass(frozen=True)
class Configuration:
    """A hospital's configuration document, compiled: its schedule, its doctors' schedules,
    its appointment types."""

    doc: dict
    schedule: Schedule
    practitioners: dict[str, Practitioner] = field(default_factory=dict)
    appointment_types: dict[str, AppointmentType] = field(default_factory=dict)

    @classmethod
    def compile(cls, doc: dict) -> Configuration:
        """Compile a (valid) Hospital document."""
        schedule = compile_schedule(doc)
        practitioners = {
            pid: compile_practitioner(doc, schedule, pid, raw)
            for pid, raw in (doc.get("practitioners") or {}).items()
        }
        return cls(doc, schedule, practitioners, compile_appointment_types(doc))

    @property
    def hold_seconds(self) -> int:
        """How long a hold (and a waitlist offer) keeps its place."""
        return int(self.doc.get("hold_seconds") or DEFAULT_HOLD_SECONDS)

    @property
    def version(self) -> int:
        """The configuration's version."""
        return self.schedule.version

    def practitioner(self, practitioner_id: str) -> Practitioner:
        """A doctor of the hospital; PractitionerNotFound when there is none."""
        found = self.practitioners.get(practitioner_id)
        if found is None:
            raise PractitionerNotFound(
                f"No practitioner {practitioner_id!r} at {self.schedule.hospital_id}"
            )
        return found

    def schedule_for(self, practitioner_id: str | None) -> Schedule:
        """The doctor's schedule, or the hospital's own when `practitioner_id` is None."""
        if practitioner_id is None:
            return self.schedule
        return self.practitioner(practitioner_id).schedule

    def units_asked(self, code: str | None) -> int | None:
        """The units of the appointment type a read asks about (`?appointment_type=`), None
        when it asks about none; AppointmentTypeNotFound for an unknown one."""
        return None if code is None else self.appointment_type(code).units

    def appointment_type(self, code: str | None) -> AppointmentType | None:
        """The type `code` names, the hospital's default when None (None when it has none:
        a booking is then one unit); AppointmentTypeNotFound for an unknown code."""
        if code is None:
            code = self.doc.get("default_appointment_type")
            if code is None:
                return None
        found = self.appointment_types.get(code)
        if found is None:
            raise AppointmentTypeNotFound(
                f"No appointment type {code!r} at {self.schedule.hospital_id}"
            )
        return found


class ConfigurationCache:
    """The current configuration of a hospital, with at most one read of the source."""

    def __init__(
        self,
        load: Callable[[str], dict | None],
        restore: Callable[[str, int], None] | None = None,
    ):
        """`load(hospital_id)`: the document from the source, None when there is none.
        `restore(hospital_id, version)`: put back a version key that was missing."""
        self._load = load
        self._restore = restore
        self._entries: dict[str, Configuration] = {}
        self._lock = threading.Lock()

    def cached(self, hospital_id: str) -> Configuration | None:
        """The cached configuration, unchecked (to know which dates to read before reading)."""
        return self._entries.get(hospital_id)

    def current(self, hospital_id: str, published: Published) -> Configuration:
        """The configuration to use now; HospitalNotFound when there is none."""
        entry = self._entries.get(hospital_id)
        if entry is not None and published.version == entry.version:
            return entry
        doc = self._load(hospital_id) if is_id(hospital_id) else None
        if doc is None:
            raise HospitalNotFound(f"No hospital with id {hospital_id!r}")
        try:
            entry = Configuration.compile(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.error(
                "the source answered for %r with a document that is not a hospital's", hospital_id
            )
            raise ServiceUnavailable("The hospital's configuration could not be read") from exc
        if entry.schedule.hospital_id != hospital_id:
            log.error(
                "asked for hospital %r, the source answered %r",
                hospital_id,
                entry.schedule.hospital_id,
            )
            raise HospitalNotFound(f"No hospital with id {hospital_id!r}")
        with self._lock:
            self._entries[hospital_id] = entry
        if published.missing and self._restore is not None:
            self._restore(hospital_id, entry.version)
        return entry

    def forget(self, hospital_id: str) -> None:
        """Drop a cached configuration (after this process edited it)."""
        with self._lock:
            self._entries.pop(hospital_id, None)
