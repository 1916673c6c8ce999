"""The topics this process serves, their one reader each, and their clients.

A topic (hospital, date, doctor or none) that has at least one client has a `Feed`: one
reader task follows the topic's two Redis streams (XREAD BLOCK); for each run of entries it
reads the states that changed from the booking service once, and offers the events to every
client of the topic. A client is a bounded queue that its own connection drains; the reader
never waits for a client: one whose queue is full is dropped (its connection is closed, and
it comes back with Last-Event-ID).

Joins. Clients that join a topic at the same moment are served together, by one task of the
feed (`Feed.joining`): one read of the streams' positions, one read of each state, and each
client's first events from those (one resync, or what it missed since its Last-Event-ID). A
burst of joins (a waiting room reconnecting) costs one read, not one per client, and no join
waits for another's reads. `Hub.knows` tells whether this process has lately read the
availability of that hospital (and doctor): a stream of one it knows answers its headers
before its first state is read.

Order. Every state read of a topic (the reader's, and each batch of joining clients' first
one) is made under the feed's lock, and the events of a read are offered under it too; a
client starts at the position its first read covered (`Client.floor`, set under the lock) and
is offered only later events. So the states a client sees were read in the order it sees
them, and never go back in time. Ids never go back either: they are the stream entries' ids,
and in the one case where two streams' entries do not follow each other (an edit and a change
of the day in the same millisecond, or a clock set back) the later event takes the id just
after the earlier one, which is no entry of either stream (a client that resumes from it is
resynchronised).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from . import metrics
from .booking_client import Answer, BookingClient, BookingUnavailable
from .sse import (
    AVAILABILITY,
    KINDS,
    NO_ID,
    QUEUE,
    Event,
    StreamId,
    after,
    changes,
    events_for,
    parse_id,
    resync,
)
from .streams import Positions, Replay, Streams, Topic

log = logging.getLogger(__name__)

#: How long one XREAD waits for an entry before the reader asks again.
BLOCK_MS = 5000
#: A state read this recently at the same positions is given to a joining client as it is:
#: many clients that come back at once (a restart) cost one read, not one each.
REUSE_SECONDS = 1.0
#: How long a hospital (and doctor) whose availability was read counts as known (Hub.knows).
KNOWN_SECONDS = 600.0
#: Known pairs kept before the stale ones are swept out.
MOST_KNOWN = 10000
#: Retries of Redis and of the booking service: from this delay, doubling, up to the last.
RETRY_FIRST_SECONDS = 0.2
RETRY_MOST_SECONDS = 5.0


class Refused(Exception):
    """The booking service refused the state a stream would start with (a 4xx answer: no
    such hospital or doctor, ...); the stream answers the same."""

    def __init__(self, answer: Answer):
        super().__init__(f"booking service answered {answer.status}")
        self.answer = answer


class Backoff:
    """Waits between retries: from RETRY_FIRST_SECONDS, doubling, up to RETRY_MOST_SECONDS."""

    def __init__(self) -> None:
        self.delay = RETRY_FIRST_SECONDS

    async def wait(self) -> None:
        """Sleep the current delay, and double it for the next time."""
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, RETRY_MOST_SECONDS)


class Client:
    """One open stream: its bounded queue of events and the position it starts after."""

    def __init__(self, buffer: int):
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=buffer)
        # None until its first events are read: nothing is offered to it before.
        self.floor: StreamId | None = None
        self.dropped = False
        self.transport: asyncio.BaseTransport | None = None

    def offer(self, item: Event) -> None:
        """Queue an event later than what the client has; drop the client when it is full."""
        if self.dropped or self.floor is None or item.id <= self.floor:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            metrics.DROPPED.inc()
            self.drop()

    def drop(self) -> None:
        """Close the connection now (its handler is stuck writing to a client that does not
        read): the client reconnects with Last-Event-ID."""
        self.dropped = True
        if self.transport is not None:
            self.transport.abort()

    def end(self) -> None:
        """End the stream cleanly after what is queued (shutdown)."""
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.drop()


@dataclass
class Cached:
    """A state read from the booking service, and the positions it covers."""

    positions: Positions
    read_at: float
    state: object


@dataclass
class Joiner:
    """A client waiting for its first events."""

    client: Client
    last_seen: StreamId | None  # its Last-Event-ID, when it is an id at all
    request_id: str | None
    first: asyncio.Future[list[Event]]


@dataclass
class Feed:
    """A topic with clients: its reader, its lock, where its reader is, its last states, and
    the clients waiting for their first events."""

    topic: Topic
    clients: set[Client] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reader: asyncio.Task | None = None
    joiners: list[Joiner] = field(default_factory=list)
    joining: asyncio.Task | None = None
    positions: Positions | None = None  # the reader's; None: read from the start
    last_id: StreamId = NO_ID  # of the last event offered
    cache: dict[str, Cached] = field(default_factory=dict)


class Hub:
    """Every feed of this process."""

    def __init__(self, streams: Streams, booking: BookingClient):
        self.streams = streams
        self.booking = booking
        self.feeds: dict[Topic, Feed] = {}
        # (hospital, doctor or None) -> when its availability was last read (monotonic).
        self.known: dict[tuple[str, str | None], float] = {}

    def knows(self, topic: Topic) -> bool:
        """Whether the booking service answered this hospital's (and doctor's) availability
        within KNOWN_SECONDS: a new stream of it answers its headers at once."""
        seen = self.known.get((topic.hospital_id, topic.practitioner_id))
        return seen is not None and time.monotonic() - seen < KNOWN_SECONDS

    async def join(
        self, topic: Topic, client: Client, last_event_id: str | None, request_id: str | None
    ) -> list[Event]:
        """Add a client to its topic's feed; its first events: what it missed since
        `last_event_id` when the streams still hold it, else one resync. Clients that join
        at the same moment share the reads. Raises Refused or BookingUnavailable when the
        stream cannot start (the client is then removed)."""
        feed = self.feeds.get(topic)
        if feed is None:
            feed = self.feeds[topic] = Feed(topic)
        feed.clients.add(client)  # before any wait: the feed lives while a client joins
        joiner = Joiner(
            client, parse_id(last_event_id), request_id, asyncio.get_running_loop().create_future()
        )
        feed.joiners.append(joiner)
        if feed.joining is None:
            feed.joining = asyncio.create_task(self._serve_joiners(feed), name=f"join {topic}")
        try:
            return await joiner.first
        except BaseException:
            self.leave(topic, client)
            raise

    def leave(self, topic: Topic, client: Client) -> None:
        """Remove a client; a feed without clients stops reading and is forgotten."""
        feed = self.feeds.get(topic)
        if feed is None:
            return
        feed.clients.discard(client)
        if not feed.clients:
            del self.feeds[topic]
            if feed.reader is not None:
                feed.reader.cancel()

    def close(self) -> None:
        """End every stream (shutdown): clients reconnect, to another process or this one's
        successor, with Last-Event-ID."""
        for feed in list(self.feeds.values()):
            for client in list(feed.clients):
                client.end()

    async def _serve_joiners(self, feed: Feed) -> None:
        """Serve the feed's joining clients, all those waiting at once, until none waits."""
        batch: list[Joiner] = []
        try:
            while feed.joiners:
                async with feed.lock:
                    batch = [j for j in feed.joiners if not j.first.done()]
                    feed.joiners = []
                    if not batch:
                        continue
                    try:
                        firsts = await self._first_events(feed, batch)
                    except Exception as exc:  # noqa: BLE001 - every joiner of the batch gets it
                        for joiner in batch:
                            if not joiner.first.done():
                                joiner.first.set_exception(exc)
                        continue
                    for joiner, (events, floor) in zip(batch, firsts, strict=True):
                        joiner.client.floor = floor  # before the lock goes: see "Order"
                        if not joiner.first.done():
                            joiner.first.set_result(events)
                if feed.reader is None and feed.clients and self.feeds.get(feed.topic) is feed:
                    feed.reader = asyncio.create_task(self._follow(feed), name=f"live {feed.topic}")
        finally:
            feed.joining = None
            # Only when this task was cancelled (shutdown): nobody waits forever.
            for joiner in [*batch, *feed.joiners]:
                if not joiner.first.done():
                    joiner.first.cancel()
            feed.joiners = []

    async def _first_events(
        self, feed: Feed, batch: list[Joiner]
    ) -> list[tuple[list[Event], StreamId]]:
        """Each joining client's first events and the position they cover, from one read of
        the positions and one of each state needed (under the lock)."""
        topic = feed.topic
        request_id = batch[0].request_id
        try:
            positions: Positions | None = await self.streams.positions(topic)
        except RedisError as exc:
            # A stream still starts: with the state now, and the id of the newest event this
            # feed has seen; its reader retries Redis until it answers.
            metrics.REDIS_ERRORS.inc()
            log.warning("live %s: Redis unavailable at join: %s", topic, exc)
            positions = None
        else:
            self._start_at(feed, positions)
        replays = await self._replays(topic, batch, positions)
        kinds: set[str] = set()
        for joiner in batch:
            replay = replays.get(joiner.last_seen) if joiner.last_seen is not None else None
            kinds.update(KINDS if replay is None else changes(replay.entries))
        states = await self._states(feed, [k for k in KINDS if k in kinds], positions, request_id)
        firsts = []
        for joiner in batch:
            replay = replays.get(joiner.last_seen) if joiner.last_seen is not None else None
            if replay is not None and joiner.last_seen is not None:
                changed = changes(replay.entries)
                floor = max(joiner.last_seen, replay.positions.newest)
                firsts.append((events_for(changed, states), floor))
            else:
                at = positions.newest if positions is not None else feed.last_id
                firsts.append(([resync(at, states[AVAILABILITY], states[QUEUE])], at))
        return firsts

    async def _replays(
        self, topic: Topic, batch: list[Joiner], positions: Positions | None
    ) -> dict[StreamId, Replay | None]:
        """For each Last-Event-ID of the batch, what came after it up to `positions` (None:
        it cannot be replayed, the client gets a resync)."""
        wanted = sorted({j.last_seen for j in batch if j.last_seen is not None})
        if positions is None or not wanted:
            return {}
        found = await asyncio.gather(
            *(self.streams.replay(topic, seen, positions) for seen in wanted),
            return_exceptions=True,
        )
        replays: dict[StreamId, Replay | None] = {}
        for seen, replay in zip(wanted, found, strict=True):
            if isinstance(replay, RedisError):
                metrics.REDIS_ERRORS.inc()
                log.warning("live %s: replay unavailable, resync: %s", topic, replay)
                replay = None
            elif isinstance(replay, BaseException):
                raise replay
            replays[seen] = replay
        return replays

    @staticmethod
    def _start_at(feed: Feed, positions: Positions) -> None:
        """Where a new feed's reader starts: what its first client's state covers."""
        if feed.reader is None and feed.positions is None:
            feed.positions = positions

    async def _states(
        self,
        feed: Feed,
        kinds: list[str],
        positions: Positions | None,
        request_id: str | None,
        joining: bool = True,
    ) -> dict[str, object]:
        """The current state of each kind (None: none to send). Raises BookingUnavailable
        when the availability cannot be read, and, for a joining client, Refused when the
        booking service refuses it."""
        states: dict[str, object] = {}
        now = time.monotonic()
        to_read = []
        for kind in kinds:
            cached = feed.cache.get(kind)
            if (
                cached is not None
                and positions is not None
                and cached.positions == positions
                and now - cached.read_at < REUSE_SECONDS
            ):
                states[kind] = cached.state
            else:
                to_read.append(kind)
        # Both at once: a joining client waits for the slower one only.
        read = await asyncio.gather(
            *(self._read(feed.topic, kind, request_id, joining) for kind in to_read),
            return_exceptions=True,
        )
        for kind, state in zip(to_read, read, strict=True):
            if isinstance(state, BaseException):
                raise state
            states[kind] = state
            if positions is not None and state is not None:
                feed.cache[kind] = Cached(positions, now, state)
        return states

    async def _read(self, topic: Topic, kind: str, request_id: str | None, joining: bool) -> object:
        """One state from the booking service. The queue is optional (any failure: None); the
        availability is not (BookingUnavailable; a 4xx is Refused for a joining client, and
        nothing to send for the reader)."""
        metrics.STATE_READS.labels(kind).inc()
        if kind == QUEUE:
            try:
                answer = await self.booking.queue(topic, request_id)
            except BookingUnavailable:
                metrics.FETCH_ERRORS.inc()
                return None
            return answer.body if answer.status == 200 else None
        try:
            answer = await self.booking.availability(topic, request_id)
        except BookingUnavailable:
            metrics.FETCH_ERRORS.inc()
            raise
        pair = (topic.hospital_id, topic.practitioner_id)
        if answer.status == 200:
            self.known[pair] = time.monotonic()
            if len(self.known) > MOST_KNOWN:
                self._forget_old()
            return answer.body
        self.known.pop(pair, None)
        if joining:
            raise Refused(answer)
        return None

    async def _follow(self, feed: Feed) -> None:
        """The topic's reader: new entries of its streams, one run at a time, until it is
        cancelled (its last client left). Redis failures are retried with backoff."""
        backoff = Backoff()
        while True:
            since = feed.positions or Positions()
            try:
                entries, positions = await self.streams.read(feed.topic, since, BLOCK_MS)
                backoff = Backoff()
                if entries:
                    await self._publish(feed, changes(entries), positions)
                feed.positions = positions
            except RedisError as exc:
                metrics.REDIS_ERRORS.inc()
                log.warning("live %s: XREAD failed, retrying in %.1f s: %s", feed.topic,
                            backoff.delay, exc)  # fmt: skip
                await backoff.wait()
            except Exception:  # noqa: BLE001 - a reader that dies would leave its clients mute
                log.exception("live %s: reader failed, retrying", feed.topic)
                await backoff.wait()

    async def _publish(self, feed: Feed, changed: dict[str, StreamId], at: Positions) -> None:
        """Read the states that changed, once, and offer their events to every client;
        while the booking service is down, retry (the clients keep their connections)."""
        backoff = Backoff()
        while True:
            async with feed.lock:
                try:
                    states = await self._states(feed, list(changed), at, None, joining=False)
                except BookingUnavailable as exc:
                    log.warning("live %s: booking service unavailable, retrying in %.1f s: %s",
                                feed.topic, backoff.delay, exc)  # fmt: skip
                else:
                    for item in events_for(changed, states):
                        self._offer(feed, item)
                    return
            await backoff.wait()

    def _forget_old(self) -> None:
        """Forget the hospitals (and doctors) not read within KNOWN_SECONDS."""
        now = time.monotonic()
        for pair, seen in list(self.known.items()):
            if now - seen >= KNOWN_SECONDS:
                del self.known[pair]

    @staticmethod
    def _offer(feed: Feed, item: Event) -> None:
        """Give an event the next id of this feed, and offer it to every client."""
        stream_id = after(item.id, feed.last_id)
        if stream_id != item.id:
            item = _renumbered(item, stream_id)
        feed.last_id = stream_id
        metrics.EVENTS.labels(item.name).inc()
        for client in list(feed.clients):
            client.offer(item)


def _renumbered(item: Event, stream_id: StreamId) -> Event:
    """The same event with another id (its wire bytes start with its id line)."""
    _, rest = item.wire.split(b"\n", 1)
    return Event(stream_id, item.name, b"id: %d-%d\n" % stream_id + rest)
