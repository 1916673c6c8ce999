"""Live events: every change of a hospital-day's counts and every visit step is appended, once,
by the process that made it, to that day's Redis stream; the live service (live_service/) reads
the streams and pushes the answers to the clients of `GET /api/live/{hospital}/{date}`.

Counts are changed only by the gate's Lua scripts (booking_service/adapters/lua: reserve, release,
rebuild), and each appends its `availability` entry itself, in the same atomic step as the
change. What the queue shows (confirmed appointments and their visit steps, in MongoDB) is
announced from Python right after the change: a booking once confirmed, a cancel, a visit step;
and so is an edit.

A stream entry is a marker, `{"event": "availability" | "queue"}`: what changed, not the new
state. The live service answers each marker with the state it reads after it, one topic at a
time, so what a client sees never goes back in time, whatever the order in which concurrent
changes were published. The stream is the replay buffer (`STREAM_LENGTH` entries, and it
expires with the day's capacity records): a client that reconnects with `Last-Event-ID` is
answered from it, or resynchronised when its id has left it.

Keys share the hospital-day's hash tag, so a stream lives on the Redis Cluster slot of the
records it reports on. An edit of a hospital's configuration changes every day at once: it is
appended to the hospital's edits stream, which every topic of that hospital follows.
"""

from __future__ import annotations

import logging

import redis

from . import keys

log = logging.getLogger(__name__)

AVAILABILITY = "availability"
QUEUE = "queue"
EDIT = "edit"
STREAM_LENGTH = 1000  # entries kept per stream (approximately: MAXLEN ~)
STREAM_TTL_SECONDS = 4 * 86400  # a day's stream outlives the day by a few days


def stream_key(hospital_id: str, day: str, practitioner_id: str | None = None) -> str:
    """The events of one hospital-day: the hospital's own queue, or one doctor's."""
    if practitioner_id is None:
        return f"live:{keys.day_tag(hospital_id, day)}"
    return f"live:{keys.day_tag(hospital_id, day)}:p:{practitioner_id}"


def edits_key(hospital_id: str) -> str:
    """The edits of a hospital's configuration (each may change every day's answers)."""
    return f"live:{{{hospital_id}}}:edits"


def _append(client: redis.Redis, key: str, event: str) -> str | None:
    try:
        pipe = client.pipeline(transaction=False)
        pipe.xadd(key, {"event": event}, maxlen=STREAM_LENGTH, approximate=True)
        pipe.expire(key, STREAM_TTL_SECONDS)
        entry_id, _ = pipe.execute()
    except redis.RedisError as exc:
        # The change itself is made; only its announcement is lost. Clients still converge:
        # the next change, or their next reconnect, brings the current state.
        log.warning("live event %s on %s not published: %s", event, key, exc)
        return None
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def publish(
    client: redis.Redis,
    hospital_id: str,
    day: str,
    practitioner_id: str | None,
    event: str,
) -> str | None:
    """Announce that a hospital-day's `availability` (counts) or `queue` (visit steps)
    changed; returns the entry id, None when Redis could not take it (best effort)."""
    return _append(client, stream_key(hospital_id, day, practitioner_id), event)


def publish_edit(client: redis.Redis, hospital_id: str) -> str | None:
    """Announce that a hospital's configuration changed (every day's answers may have)."""
    return _append(client, edits_key(hospital_id), EDIT)


class LiveEvents:
    """The announcements a service makes, over one Redis client (an adapter of the service
    layer: tests give it a fake that records them)."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def queue(self, hospital_id: str, day: str, practitioner_id: str | None) -> None:
        """An appointment of the hospital-day moved through its visit."""
        publish(self.client, hospital_id, day, practitioner_id, QUEUE)
