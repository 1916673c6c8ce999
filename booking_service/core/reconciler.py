"""Background upkeep that keeps Redis's capacity records equal to MongoDB's truth.

Each booking-service process runs one reconciler thread; a Redis lock lets one of them
work at a time. Every RECONCILE_INTERVAL_SECONDS the leader:
- rebuilds every day (the hospital's own records and each doctor's) that has appointments
  after Redis lost its data (the complete-records
  marker gone), then sets the marker, so the counts shown converge to MongoDB's;
- abandons pending appointments older than PENDING_TIMEOUT_SECONDS (their process died
  between writing and confirming) and gives their places back, exactly once;
- releases the places of appointments closed recently, in case a release was lost, once
  each (then marked `released`; a place never taken is marked so when it is closed);
- repairs moves a process left half-done (moves.py), ends holds past their time and holds
  a rebuild could not restore (waitlist.py), and offers free places to the waitlist;
- after a rebuild of everything, counts every user's live holds and offers again
  (holds.restore_quota: Redis lost the quota sets with the rest);
- deletes holds and waitlist entries that ended more than RECORD_RETENTION_DAYS ago.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import timedelta

import redis
from pymongo.errors import PyMongoError

from booking_service.adapters.repository import epoch_ms
from booking_service.core import holds, moves, waitlist
from booking_service.core.booking import abandon_stale
from booking_service.core.context import Context
from booking_service.core.places import current_configuration, free_place, rebuild_day
from shared.clock import utcnow
from shared.errors import DomainError
from shared.slots import parse_date

log = logging.getLogger(__name__)
LOCK_KEY = "cap:reconciler:lock"


def rebuild_all(ctx: Context) -> int:
    """Rebuild every day with active appointments or live holds, then set the
    complete-records marker; returns days built."""
    token = ctx.capacity.begin_full_rebuild()
    now = utcnow()
    since = (now - timedelta(days=2)).date().isoformat()
    built = 0
    days = set(ctx.appointments.active_days(since)) | ctx.holds.live_days(epoch_ms(now))
    for hospital_id, practitioner_id, day_text in sorted(days, key=_day_order):
        try:
            configuration = current_configuration(ctx, hospital_id)
        except DomainError:
            log.warning("cannot rebuild %s %s: no such hospital", hospital_id, day_text)
            continue
        day = parse_date(day_text)
        if practitioner_id is None or practitioner_id in configuration.practitioners:
            schedule = configuration.schedule_for(practitioner_id)
            built += rebuild_day(ctx, schedule, hospital_id, day)
        else:  # a doctor a forced edit removed: the places their appointments hold
            built += rebuild_day(ctx, configuration.schedule, hospital_id, day, practitioner_id)
    holds.restore_quota(ctx, now)  # the users' live holds and offers, counted again
    ctx.capacity.finish_full_rebuild(token)
    return built


def _day_order(day: tuple[str, str | None, str]) -> tuple[str, str, str]:
    return day[0], day[1] or "", day[2]


def reconcile_once(ctx: Context, last_sweep) -> object:
    """One pass of upkeep; returns the time the next pass sweeps closed appointments from."""
    now = utcnow()
    if not ctx.capacity.records_complete():
        built = rebuild_all(ctx)
        log.info("capacity records rebuilt from MongoDB: %d day(s)", built)
    stale_before = now - timedelta(seconds=ctx.config.pending_timeout_seconds)
    abandoned = abandon_stale(ctx, stale_before, now)
    if abandoned:
        log.warning("abandoned %d stale pending appointment(s)", abandoned)
    since = last_sweep - timedelta(seconds=ctx.config.reconcile_interval_seconds * 2 + 5)
    freed = [doc["_id"] for doc in ctx.appointments.closed_since(since) if free_place(ctx, doc)]
    ctx.appointments.mark_released(freed)
    undone, moved_out = moves.repair(ctx, now)
    if undone or moved_out:
        log.warning("moves repaired: %d undone, %d old place(s) freed", undone, moved_out)
    waitlist.expire_holds(ctx, now)
    waitlist.end_lost_holds(ctx, now)
    waitlist.upkeep(ctx, now, int(ctx.config.pending_timeout_seconds * 1000))
    forget_ended(ctx, now)
    return now


def forget_ended(ctx: Context, now) -> int:
    """Delete the holds and waitlist entries that ended more than RECORD_RETENTION_DAYS ago
    (an entry whose webhook events are not relayed yet stays); how many."""
    before_ms = epoch_ms(now) - int(ctx.config.record_retention_days * 86_400_000)
    return ctx.holds.delete_ended(before_ms) + ctx.waitlist.delete_ended(before_ms)


class Reconciler:
    """The background thread; start() once per process, after gunicorn forked it."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.identity = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish."""
        self._stop.set()

    def _is_leader(self, ttl_ms: int) -> bool:
        return self.ctx.capacity.lead(LOCK_KEY, self.identity, ttl_ms)

    def _run(self) -> None:
        interval = self.ctx.config.reconcile_interval_seconds
        last_sweep = utcnow() - timedelta(minutes=10)
        while not self._stop.is_set():
            try:
                if self._is_leader(int(interval * 3000)):
                    last_sweep = reconcile_once(self.ctx, last_sweep)
            except (redis.RedisError, PyMongoError, DomainError) as exc:
                log.warning("reconciler pass failed: %s", exc)
            except Exception:  # noqa: BLE001 - the thread must survive anything
                log.exception("reconciler pass crashed")
            self._stop.wait(interval)
