"""The booking path, unchanged, on a Redis Cluster (three valkey masters, REDIS_CLUSTER=1).

Every Lua script's keys share one hash tag `{hospital:date}` and the epoch/warming keys share
`{epoch}`, so every script runs on one slot; the read pipelines span slots and nodes.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
import redis
from redis.cluster import RedisCluster, key_slot

from devstack.cluster import SLOTS, RedisClusterServers, slot_ranges
from devstack.servers import port_in_use
from devstack.stack import Stack
from shared import keys
from tests.helpers import (
    TEST_ENV,
    Api,
    book_many,
    booking,
    confirmed_in,
    create_hospital,
    next_weekday,
    own_database,
    seeded_admin,
    wait_until,
)

# A whole system on a three-master cluster: with the end-to-end tests.
pytestmark = pytest.mark.e2e

CAPACITY = 15


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three masters covering every slot; stopped at the end of the module."""
    with RedisClusterServers(tmp_path_factory.mktemp("cluster"), masters=3) as servers:
        yield servers


@pytest.fixture(scope="module")
def system(tmp_path_factory, cluster, mongo_url, mongo_db_name):
    """The whole system on the cluster, with its own MongoDB database (dropped afterwards)."""
    db_name = f"{mongo_db_name}_cluster"
    env = dict(TEST_ENV, MONGO_DB=db_name, REDIS_CLUSTER="1")
    stack = Stack(
        tmp_path_factory.mktemp("cluster-stack"),
        mongo_url=mongo_url,
        redis_url=cluster.url,
        extra_env=env,
    )
    client = RedisCluster.from_url(cluster.url, socket_timeout=5)
    with own_database(mongo_url, db_name) as db:
        try:
            stack.start()
            yield {"stack": stack, "db": db, "redis": client}
        finally:
            stack.stop()
            client.close()


@pytest.fixture(scope="module")
def admin(system) -> Api:
    """The seeded admin, logged in through the gateway."""
    return seeded_admin(system["stack"].gateway_url)


def flush_every_master(client: RedisCluster) -> None:
    """FLUSHALL on each master: the whole cluster loses its data."""
    for node in client.get_primaries():
        client.flushall(target_nodes=node)


def test_slot_ranges_cover_every_slot_once():
    for masters in (1, 3, 5):
        ranges = slot_ranges(masters)
        covered = [s for first, last in ranges for s in range(first, last + 1)]
        assert covered == list(range(SLOTS))


def test_a_one_master_cluster_forms_and_stops_cleanly(tmp_path):
    with RedisClusterServers(tmp_path, masters=1) as servers:
        client = RedisCluster.from_url(servers.url, socket_timeout=5)
        assert client.set("k", "v") and client.get("k") == b"v"
        client.close()
        nodes = list(servers.nodes)
    assert not any(node.running for node in nodes)
    assert not any(port_in_use(port) for port in servers.ports + servers.bus_ports)


def test_one_hospital_day_lands_on_one_slot(system, cluster):
    client = system["redis"]
    assert len(client.get_primaries()) == 3
    day = "2026-11-28"
    counts, holds = keys.counts_key("gomoti", day), keys.holds_key("gomoti", day, "17:00")
    assert key_slot(counts.encode()) == key_slot(holds.encode()) == client.keyslot(holds)
    assert client.cluster_keyslot(counts) == client.cluster_keyslot(holds)
    assert key_slot(keys.RECORDS_COMPLETE_KEY.encode()) == key_slot(keys.FULL_REBUILD_KEY.encode())
    # different days of a hospital are spread over slots (and so over nodes)
    slots = {key_slot(keys.counts_key("gomoti", f"2026-11-{d:02d}").encode()) for d in range(1, 29)}
    assert len(slots) > 1


def test_200_concurrent_requests_for_the_last_5_places(system, admin):
    hid, day = create_hospital(admin, CAPACITY), next_weekday(6)
    for _ in range(CAPACITY - 5):
        assert admin.post("/api/appointments", booking(hid, day, "10:00")).status_code == 201
    stack = system["stack"]
    reqs = [booking(hid, day, "10:00") for _ in range(200)]
    answers = book_many(admin, [stack.booking_url, stack.gateway_url], reqs)
    statuses = Counter(a.status_code for a in answers)
    print(f"\ncluster: 200 concurrent bookings for the last 5 places -> {dict(statuses)}")
    assert statuses == {201: 5, 409: 195}, statuses
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"slot_full"}
    truth = confirmed_in(system["db"], hid, day)
    assert len(truth) == CAPACITY
    assert sorted(a["serial"] for a in truth) == list(range(1, CAPACITY + 1))
    assert len(system["redis"].hgetall(keys.holds_key(hid, str(day), "10:00"))) == CAPACITY


def test_reads_show_live_counts(system, admin):
    hid = create_hospital(admin, 5)
    first, second = next_weekday(6), next_weekday(1)
    plan = {(first, "09:00"): 2, (first, "11:00"): 1, (second, "10:00"): 3}
    for (day, slot), n in plan.items():
        for _ in range(n):
            assert admin.post("/api/appointments", booking(hid, day, slot)).status_code == 201
    expected = {
        str(d): {s: plan.get((d, s), 0) for s in ("09:00", "10:00", "11:00")}
        for d in (first, second)
    }
    gateway = Api(system["stack"].gateway_url)

    for day, slots in expected.items():
        body = gateway.get(f"/api/dynamic-slots/available/{hid}/{day}").json()
        assert body["counts"] == "live", body
        assert {s["start"]: s["booked"] for s in body["slots"]} == slots
        light = gateway.get(f"/api/availability/{hid}/{day}").json()
        assert light["counts"] == "live", light
        assert {s: v["booked"] for s, v in light["slots"].items()} == slots
        assert light["slots"]["09:00"]["available"] == 5 - slots["09:00"]

    today = date.today()
    start = str(today + timedelta(days=1))

    def calendar():
        return gateway.get(f"/api/dynamic-slots/calendar/{hid}?days=60&start={start}").json()

    # every day is live once the reconciler has set the epoch on this cluster
    wait_until(lambda: all(d["counts"] == "live" for d in calendar()["days"]), timeout=10)
    days = calendar()["days"]
    assert len(days) == 60
    for d in days:
        booked = {s["start"]: s["booked"] for s in d["slots"]}
        if d["date"] in expected:
            assert booked == expected[d["date"]], d
        else:
            assert not any(booked.values()), d

    dates = [str(today + timedelta(days=i)) for i in range(1, 29)]
    bulk = gateway.post("/api/availability/bulk", {"hospital_id": hid, "dates": dates})
    assert bulk.status_code == 200, bulk.text
    answered = bulk.json()["dates"]
    assert sorted(answered) == sorted(dates)
    for day, view in answered.items():
        assert view["counts"] == "live", view
        want = expected.get(day, {"09:00": 0, "10:00": 0, "11:00": 0})
        assert {s: v["booked"] for s, v in view["slots"].items()} == want
        assert view["total_booked"] == sum(want.values())


def test_cancel_edit_and_limits_on_the_cluster(system, admin):
    hid, day = create_hospital(admin, 1), next_weekday(6)
    gateway = Api(system["stack"].gateway_url)
    patient = gateway.new_patient()  # limited: its bookings go through the limiter's pipeline
    made = patient.post("/api/appointments", booking(hid, day, "09:00"))
    assert made.status_code == 201, made.text
    again = patient.post("/api/appointments", booking(hid, day, "09:00"))
    assert again.status_code == 409 and again.json()["error"] == "slot_full"
    # cancel: the release script frees the place at once
    gone = patient.delete(f"/api/appointments/{made.json()['appointment_id']}")
    assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
    assert gateway.get(f"/api/availability/{hid}/{day}").json()["slots"]["09:00"]["booked"] == 0
    assert patient.post("/api/appointments", booking(hid, day, "09:00")).status_code == 201
    # an edit (editing sentinel, then the max-wins publish script) is visible on the next read
    path = f"/api/dynamic-slots/hospitals/{hid}"
    current = gateway.get(path)
    doc = {k: v for k, v in current.json().items() if k not in ("version", "updated_at")}
    doc["max_appointments_per_slot"] = 3
    edited = admin.put(path, doc, headers={"If-Match": current.headers["ETag"]})
    assert edited.status_code == 200, edited.text
    assert system["redis"].get(keys.schedule_version_key(hid)) == b"2"
    slot = gateway.get(f"/api/availability/{hid}/{day}").json()["slots"]["09:00"]
    assert slot == {"capacity": 3, "booked": 1, "held": 0, "offered": 0, "available": 2}
    # failed logins are counted (and refused past the limit) on the cluster too
    wrong = {"email": f"nobody-{hid}@example.com", "password": "wrong"}
    for _ in range(10):
        assert gateway.post("/api/auth/login", wrong).status_code == 401
    resp = gateway.post("/api/auth/login", wrong)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0


def test_flushall_on_every_master_never_overbooks_and_counts_converge(system, admin):
    hid, day = create_hospital(admin, 5), next_weekday(6)
    for _ in range(4):
        assert admin.post("/api/appointments", booking(hid, day, "10:00")).status_code == 201
    client = system["redis"]
    flush_every_master(client)
    stack = system["stack"]
    answers = book_many(
        admin,
        [stack.booking_url, stack.gateway_url],
        [booking(hid, day, "10:00") for _ in range(6)],
        workers=6,
    )
    statuses = Counter(a.status_code for a in answers)
    print(f"\ncluster: 6 bookings for the last place after FLUSHALL -> {dict(statuses)}")
    assert statuses == {201: 1, 409: 5}, statuses
    truth = confirmed_in(system["db"], hid, day)
    assert len(truth) == 5
    assert sorted(a["serial"] for a in truth) == [1, 2, 3, 4, 5]

    # a day nobody books again is rebuilt by the reconciler: counts converge to MongoDB's
    other = next_weekday(0)
    for _ in range(3):
        assert admin.post("/api/appointments", booking(hid, other, "09:00")).status_code == 201
    flush_every_master(client)
    gateway = Api(stack.gateway_url)

    def shows_truth():
        body = gateway.get(f"/api/dynamic-slots/available/{hid}/{other}").json()
        return body["counts"] == "live" and body["slots"][0]["booked"] == 3

    converged = wait_until(shows_truth, timeout=20)
    print(f"cluster: counts converged {converged:.2f} s after FLUSHALL on every master")
    light = gateway.get(f"/api/availability/{hid}/{other}").json()
    assert light["counts"] == "live" and light["slots"]["09:00"]["booked"] == 3
    # the day may show live before the whole warm pass ends; the epoch follows it
    wait_until(lambda: client.exists(keys.RECORDS_COMPLETE_KEY) == 1, timeout=10)
    # and the rebuilt day still refuses the place it no longer has
    resp = admin.post("/api/appointments", booking(hid, day, "10:00"))
    assert resp.status_code == 409 and resp.json()["error"] == "slot_full"


def test_readiness_needs_every_primary(tmp_path):
    """/readyz's Redis check: one PING reaches one node, so every primary is asked."""

    from shared.clients import redis_ping

    with RedisClusterServers(tmp_path, masters=3) as cluster:
        client = RedisCluster.from_url(cluster.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        redis_ping(client)
        cluster.nodes[2].kill()
        with pytest.raises(redis.RedisError):
            redis_ping(client)
        client.close()


def test_live_streams_follow_bookings_and_edits_on_the_cluster(system, admin):
    """The live service on a Redis Cluster: a day's stream and its hospital's edits stream
    are on two slots, read one after the other (live_service/streams.py)."""
    from tests.e2e.live.sse_client import EventStream
    from tests.helpers import hospital_doc, next_weekday

    gateway = system["stack"].gateway_url
    created = admin.post("/api/dynamic-slots/hospitals", hospital_doc())
    assert created.status_code == 201, created.text
    hid, day = created.json()["hospital_id"], next_weekday(3)
    with EventStream(gateway, f"/api/live/{hid}/{day}") as stream:
        assert stream.status == 200
        assert stream.next_event().name == "resync"
        booked = admin.post("/api/appointments", booking(hid, day, "10:00"))
        assert booked.status_code == 201, booked.text
        seen = {}
        while "availability" not in seen or "queue" not in seen:
            event = stream.next_event(timeout=10)
            seen[event.name] = event.data
        assert seen["availability"]["slots"]["10:00"]["booked"] == 1
        assert seen["queue"]["slots"][1]["booked"] == 1
        # an edit of the hospital (its own stream, on another slot) reaches the day's stream
        doc = dict(hospital_doc(hid), max_appointments_per_slot=9)
        assert admin.put(f"/api/dynamic-slots/hospitals/{hid}", doc).status_code == 200
        event = stream.next_event(timeout=10)
        while event.name not in ("availability", "resync"):
            event = stream.next_event(timeout=10)
        counts = event.data["availability"] if event.name == "resync" else event.data
        assert counts["slots"]["10:00"]["capacity"] == 9
