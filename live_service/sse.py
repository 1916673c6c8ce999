"""Server-sent events: the ids that order them, what a run of stream entries amounts to, and
the bytes on the wire. Pure: no I/O.

An event's id is a Redis stream entry id, `<milliseconds>-<sequence>` (shared/events.py): the
entries of one stream are ordered by it, and every live process reads the same streams, so an
id a client got from one process means the same point in the streams to any other.

Events carry states, not deltas: an entry of a day's stream says *that* the day's
availability (counts) or queue (visit steps) changed, and the event that answers it carries
the state read after it. So a run of entries amounts to, for each kind of state, one event
with the current state and the id of the last entry of that kind.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from shared.events import AVAILABILITY, QUEUE

RESYNC = "resync"
KINDS = (AVAILABILITY, QUEUE)

#: A stream entry id: (milliseconds, sequence).
StreamId = tuple[int, int]
#: Before every entry (the id of a state read when no stream had an entry yet).
NO_ID: StreamId = (0, 0)

# What a client may send as Last-Event-ID: ASCII digits only (`\d` would take any script's).
_ID_TEXT = re.compile("[0-9]{1,20}-[0-9]{1,20}")
_MAX_PART = 2**64 - 1  # Redis's ids are two unsigned 64-bit numbers

HEARTBEAT = b": keep-alive\n\n"

#: The reconnection delay each stream gives its client (`retry:`), drawn between these, so
#: that clients that lose their streams at once (a restart) do not all come back at once.
RETRY_MIN_MS = 1000
RETRY_MAX_MS = 3000


def retry_field(rng: random.Random | None = None) -> bytes:
    """The block a stream starts with: its client's reconnection delay, in milliseconds (no
    data: a client dispatches no event for it)."""
    delay = (rng or random).randint(RETRY_MIN_MS, RETRY_MAX_MS)
    return b"retry: %d\n\n" % delay


def parse_id(text: object) -> StreamId | None:
    """A Last-Event-ID as a stream entry id; None for anything that cannot be one."""
    if not isinstance(text, str) or _ID_TEXT.fullmatch(text) is None:
        return None
    ms, seq = (int(part) for part in text.split("-"))
    if ms > _MAX_PART or seq > _MAX_PART:
        return None
    return ms, seq


def format_id(stream_id: StreamId) -> str:
    """A stream entry id as Redis and the `id:` field write it."""
    return f"{stream_id[0]}-{stream_id[1]}"


@dataclass(frozen=True)
class Entry:
    """One stream entry: its id and what it says changed (`availability`, `queue`, `edit`)."""

    id: StreamId
    event: str


def kinds_changed(event: str) -> tuple[str, ...]:
    """The kinds of state an entry may have changed. An edit of the hospital's configuration,
    or a marker this service does not know, may have changed both."""
    if event in KINDS:
        return (event,)
    return KINDS


def changes(entries: Iterable[Entry]) -> dict[str, StreamId]:
    """What a run of entries amounts to: for each kind of state that changed, the id of the
    last entry that changed it."""
    last: dict[str, StreamId] = {}
    for entry in entries:
        for kind in kinds_changed(entry.event):
            if kind not in last or entry.id > last[kind]:
                last[kind] = entry.id
    return last


@dataclass(frozen=True)
class Event:
    """One event of a stream: its id, its name and its bytes on the wire."""

    id: StreamId
    name: str
    wire: bytes


def event(stream_id: StreamId, name: str, data: object) -> Event:
    """An event whose data is `data` as JSON (orjson writes it on one line)."""
    wire = b"id: %s\nevent: %s\ndata: %s\n\n" % (
        format_id(stream_id).encode(),
        name.encode(),
        orjson.dumps(data),
    )
    return Event(stream_id, name, wire)


def resync(stream_id: StreamId, availability: object, queue: object) -> Event:
    """The whole current state in one event."""
    return event(stream_id, RESYNC, {"availability": availability, "queue": queue})


def events_for(changed: dict[str, StreamId], states: dict[str, object]) -> list[Event]:
    """The events that tell a client about `changed` (kind -> id of its last entry), given
    the states read after those entries (None: no state of that kind to send), oldest first.

    Two kinds whose last entry is the same one (an edit changes both) go as one `resync`
    event: two events with one id could not be told apart by a client that resumes from it.
    """
    sent = sorted(
        (stream_id, kind) for kind, stream_id in changed.items() if states.get(kind) is not None
    )
    if len(sent) == 2 and sent[0][0] == sent[1][0]:
        return [resync(sent[0][0], states[AVAILABILITY], states[QUEUE])]
    return [event(stream_id, kind, states[kind]) for stream_id, kind in sent]


def after(stream_id: StreamId, previous: StreamId) -> StreamId:
    """`stream_id`, or just after `previous` when it is not later (see Hub: ids never go
    back within a stream)."""
    if stream_id > previous:
        return stream_id
    return previous[0], previous[1] + 1
