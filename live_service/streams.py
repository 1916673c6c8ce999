"""The live streams of shared/events.py, read from Redis with redis.asyncio.

A topic (hospital, date, doctor or none) follows two streams: the day's own
(`events.stream_key`) and the hospital's edits (`events.edits_key`). On one Redis they are
read together, in one XREAD BLOCK. A Redis Cluster keeps them on different slots (the day's
under the hospital-day's hash tag, the edits under the hospital's), where one XREAD cannot read
both: there the day's stream is read blocking for at most CLUSTER_BLOCK_MS, then the edits
stream without blocking, so an edit reaches a topic within that time.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from shared import events

from .sse import NO_ID, Entry, StreamId, format_id

#: Most entries one read returns; a stream keeps about events.STREAM_LENGTH.
READ_COUNT = 1000
#: On a Redis Cluster, how long the day's stream is waited on before the edits stream is read.
CLUSTER_BLOCK_MS = 1000


@dataclass(frozen=True)
class Topic:
    """What one stream of `GET /api/live/...` is about (ids already checked)."""

    hospital_id: str
    day: str
    practitioner_id: str | None

    @property
    def day_key(self) -> str:
        """The day's stream (counts and visit steps)."""
        return events.stream_key(self.hospital_id, self.day, self.practitioner_id)

    @property
    def edits_key(self) -> str:
        """The hospital's edits stream (every day's answers may change)."""
        return events.edits_key(self.hospital_id)


@dataclass(frozen=True)
class Positions:
    """The last entry of each of a topic's two streams (NO_ID: none)."""

    day: StreamId = NO_ID
    edits: StreamId = NO_ID

    @property
    def newest(self) -> StreamId:
        """The later of the two."""
        return max(self.day, self.edits)


@dataclass(frozen=True)
class Replay:
    """What a client that last saw an id missed: the entries after it, in both streams."""

    entries: list[Entry]
    positions: Positions


def _stream_id(text: str) -> StreamId:
    ms, seq = text.split("-")
    return int(ms), int(seq)


def _entries(rows, edits: bool) -> list[Entry]:
    """XRANGE/XREAD rows as entries; every entry of the edits stream is an edit."""
    return [
        Entry(_stream_id(entry_id), events.EDIT if edits else fields.get("event", ""))
        for entry_id, fields in rows
    ]


def _pairs(reply) -> list:
    """An XREAD reply as [(key, rows), ...]: redis-py's legacy shape [[key, rows], ...], or a
    dict {key: rows}."""
    return list(reply.items()) if isinstance(reply, dict) else list(reply or [])


def _last(rows) -> StreamId:
    return _stream_id(rows[-1][0]) if rows else NO_ID


class Streams:
    """Reads a topic's streams: the positions now, a replay after an id, and new entries
    (XREAD BLOCK, on its own client whose reads outlast the block)."""

    def __init__(self, client: aioredis.Redis, blocking: aioredis.Redis, cluster: bool = False):
        self.client = client
        self.blocking = blocking
        self.cluster = cluster

    async def positions(self, topic: Topic) -> Positions:
        """The last entry of each stream now."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xrevrange(topic.day_key, count=1)
            pipe.xrevrange(topic.edits_key, count=1)
            day, edits = await pipe.execute()
        return Positions(_last(day), _last(edits))

    async def replay(self, topic: Topic, last_seen: StreamId, upto: Positions) -> Replay | None:
        """The entries after `last_seen`, up to `upto` (positions read just before), when the
        streams still hold everything after it: `last_seen` is an entry of one of them, and
        neither has been trimmed past it. None when it is not (unknown, forged, or older than
        the replay buffer)."""
        seen = format_id(last_seen)
        async with self.client.pipeline(transaction=False) as pipe:
            for key, newest in ((topic.day_key, upto.day), (topic.edits_key, upto.edits)):
                pipe.xrange(key, seen, seen)  # is it an entry of this stream?
                pipe.xrange(key, count=1)  # the oldest entry kept
                pipe.xrange(key, "(" + seen, format_id(newest))  # what came after it
            try:
                replies = await pipe.execute()
            except aioredis.ResponseError:  # e.g. nothing can come after the largest id
                return None
        day_is, day_oldest, day_after = replies[:3]
        edits_is, edits_oldest, edits_after = replies[3:]
        if not (day_is or edits_is):
            return None
        for oldest in (day_oldest, edits_oldest):
            if oldest and _stream_id(oldest[0][0]) > last_seen:
                return None  # trimmed past it (or begun after it: a resync is right either way)
        entries = _entries(day_after, edits=False) + _entries(edits_after, edits=True)
        return Replay(entries, upto)

    async def read(
        self, topic: Topic, since: Positions, block_ms: int
    ) -> tuple[list[Entry], Positions]:
        """The entries after `since` in both streams, waiting up to `block_ms` for the first;
        and the positions to read from next."""
        if self.cluster:
            day_reply = await self.blocking.xread(
                {topic.day_key: format_id(since.day)},
                count=READ_COUNT,
                block=min(block_ms, CLUSTER_BLOCK_MS),
            )
            edits_reply = await self.client.xread(
                {topic.edits_key: format_id(since.edits)}, count=READ_COUNT
            )
            pairs = [*_pairs(day_reply), *_pairs(edits_reply)]
        else:
            reply = await self.blocking.xread(
                {topic.day_key: format_id(since.day), topic.edits_key: format_id(since.edits)},
                count=READ_COUNT,
                block=block_ms,
            )
            pairs = _pairs(reply)
        day_rows, edits_rows = [], []
        for key, rows in pairs:
            if key == topic.day_key:
                day_rows = rows
            else:
                edits_rows = rows
        entries = _entries(day_rows, edits=False) + _entries(edits_rows, edits=True)
        positions = Positions(
            _last(day_rows) if day_rows else since.day,
            _last(edits_rows) if edits_rows else since.edits,
        )
        return entries, positions
