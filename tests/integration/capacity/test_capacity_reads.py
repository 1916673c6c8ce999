"""shared/capacity_reads.py against a real Redis: the version and the counts in one read."""

from __future__ import annotations

import uuid

from shared import keys
from shared.capacity_reads import CapacityReader
from shared.versions import EDITING


def test_version_and_counts_in_one_read(client):
    hid = f"h-{uuid.uuid4().hex[:8]}"
    reader = CapacityReader(client)
    client.delete(keys.RECORDS_COMPLETE_KEY)
    client.hset(keys.counts_key(hid, "2030-01-01"), mapping={"17:00": 2, "_ready": 1})
    client.hset(keys.counts_key(hid, "2030-01-02"), mapping={"17:00": 4})  # not rebuilt
    seen = reader.published_and_counts(hid, ["2030-01-01", "2030-01-02", "2030-01-03"])
    assert seen.published.version is None and seen.published.missing
    assert dict(seen.counts["2030-01-01"]) == {"17:00": 2}
    assert seen.counts["2030-01-02"] is None and seen.counts["2030-01-03"] is None
    client.set(keys.RECORDS_COMPLETE_KEY, "1")  # every day vouched for
    client.set(keys.schedule_version_key(hid), 7)
    seen = reader.published_and_counts(hid, ["2030-01-02", "2030-01-03"])
    assert seen.published.version == 7 and not seen.published.missing
    assert dict(seen.counts["2030-01-02"]) == {"17:00": 4}
    assert dict(seen.counts["2030-01-03"]) == {}
    client.set(keys.schedule_version_key(hid), EDITING)
    assert reader.published_and_counts(hid, []).published.version is None


def test_the_script_survives_redis_forgetting_it(client):
    reader = CapacityReader(client)
    hid = f"h-{uuid.uuid4().hex[:8]}"
    client.set(keys.schedule_version_key(hid), 3)
    client.script_flush()
    assert reader.published_and_counts(hid, []).published.version == 3


def test_the_version_alone(client):
    reader = CapacityReader(client)
    hid = f"h-{uuid.uuid4().hex[:8]}"
    assert reader.published(hid).missing
    client.set(keys.schedule_version_key(hid), 4)
    assert reader.published(hid).version == 4
    client.set(keys.schedule_version_key(hid), EDITING)
    assert reader.published(hid).version is None and not reader.published(hid).missing
