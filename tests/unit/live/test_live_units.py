"""The live service's pure parts, no servers: event ids, what a run of entries amounts to,
the events that tell it, and a client's bounded queue."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live_service.hub import Client, _renumbered
from live_service.sse import (
    NO_ID,
    Entry,
    after,
    changes,
    event,
    events_for,
    format_id,
    parse_id,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-0", (1, 0)),
        ("1764300000000-12", (1764300000000, 12)),
        ("18446744073709551615-18446744073709551615", (2**64 - 1, 2**64 - 1)),
        ("18446744073709551616-0", None),  # over 64 bits
        ("99999999999999999999-0", None),
        ("1" * 21 + "-0", None),
        ("١-٢", None),  # digits, but not ASCII ones
        ("1-0 ", None),
        ("1_0-0", None),
        ("1", None),
        ("", None),
        (None, None),
        ("1-0-0", None),
    ],
)
def test_only_a_redis_stream_id_is_an_event_id(text, expected):
    assert parse_id(text) == expected


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_an_id_reads_back_as_it_was_written(ms, seq):
    assert parse_id(format_id((ms, seq))) == (ms, seq)


def test_a_run_of_entries_amounts_to_the_last_entry_of_each_kind():
    entries = [
        Entry((1, 0), "availability"),
        Entry((2, 0), "queue"),
        Entry((3, 0), "availability"),
        Entry((3, 1), "queue"),
    ]
    assert changes(entries) == {"availability": (3, 0), "queue": (3, 1)}


def test_an_edit_or_an_unknown_marker_changes_both_kinds():
    assert changes([Entry((5, 0), "edit")]) == {"availability": (5, 0), "queue": (5, 0)}
    assert changes([Entry((1, 0), "queue"), Entry((6, 0), "whatever")]) == {
        "availability": (6, 0),
        "queue": (6, 0),
    }
    assert changes([]) == {}


def test_events_go_oldest_first_and_two_with_one_id_go_as_one_resync():
    states = {"availability": {"a": 1}, "queue": {"q": 1}}
    apart = events_for({"availability": (7, 0), "queue": (4, 0)}, states)
    assert [(e.name, e.id) for e in apart] == [("queue", (4, 0)), ("availability", (7, 0))]
    together = events_for({"availability": (7, 0), "queue": (7, 0)}, states)
    assert [(e.name, e.id) for e in together] == [("resync", (7, 0))]
    assert together[0].wire == (
        b'id: 7-0\nevent: resync\ndata: {"availability":{"a":1},"queue":{"q":1}}\n\n'
    )
    # no queue state (the booking service has none): the counts alone
    alone = events_for({"availability": (7, 0), "queue": (7, 0)}, {**states, "queue": None})
    assert [(e.name, e.id) for e in alone] == [("availability", (7, 0))]


def test_an_event_is_one_line_of_data_whatever_the_state_holds():
    item = event((1, 2), "availability", {"reason": "line\nbreak\r\nand more"})
    assert item.wire.count(b"\n") == 4  # id, event, data, and the blank line
    assert item.wire.startswith(b"id: 1-2\nevent: availability\ndata: ")


def test_ids_never_go_back():
    assert after((5, 0), (4, 9)) == (5, 0)
    assert after((4, 9), (4, 9)) == (4, 10)
    assert after((3, 0), (4, 9)) == (4, 10)
    assert after((1, 0), NO_ID) == (1, 0)
    renumbered = _renumbered(event((3, 0), "queue", {"q": 1}), (4, 10))
    assert renumbered.id == (4, 10) and renumbered.wire.startswith(b"id: 4-10\nevent: queue\n")


def test_a_client_gets_only_what_is_after_its_start_and_is_dropped_when_full():
    async def scenario():
        client = Client(buffer=2)
        client.offer(event((1, 0), "availability", {}))
        assert client.queue.empty()  # not started yet: nothing is offered
        client.floor = (5, 0)
        client.offer(event((5, 0), "availability", {}))  # covered by its first state
        assert client.queue.empty()
        client.offer(event((6, 0), "availability", {}))
        client.offer(event((7, 0), "queue", {}))
        assert client.queue.qsize() == 2 and not client.dropped
        client.offer(event((8, 0), "availability", {}))  # it does not keep up
        assert client.dropped
        client.end()  # shutdown of a dropped client: nothing more
        assert client.queue.qsize() == 2

    asyncio.run(scenario())
