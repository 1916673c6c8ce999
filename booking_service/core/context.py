"""What the booking service layer works with: its adapters, built once per process
(booking_service/bootstrap.py) or from fakes in unit tests."""

from __future__ import annotations

from dataclasses import dataclass

from booking_service.adapters.capacity import CapacityRecords
from booking_service.adapters.hold_store import HoldRepository
from booking_service.adapters.limits import Limiter
from booking_service.adapters.repository import (
    AppointmentRepository,
    IdempotencyRepository,
    UserRepository,
)
from booking_service.adapters.waitlist_store import WaitlistRepository
from shared.capacity_reads import CapacityReader
from shared.config import Config
from shared.configurations import ConfigurationCache
from shared.events import LiveEvents


@dataclass
class Context:
    """What the booking service layer works with, built once per process (bootstrap.py)."""

    config: Config
    appointments: AppointmentRepository
    capacity: CapacityRecords
    reader: CapacityReader
    configurations: ConfigurationCache
    users: UserRepository
    idempotency: IdempotencyRepository
    limiter: Limiter
    events: LiveEvents
    holds: HoldRepository
    waitlist: WaitlistRepository
