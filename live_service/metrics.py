"""The live service's own metrics, beside the request metrics of shared/metrics.py (whose
module sets up prometheus-client's multiprocess mode, so it is imported first)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from shared import metrics as _shared  # noqa: F401 - multiprocess set-up before these

OPEN_STREAMS = Gauge(
    "live_open_streams",
    "Event streams open now (summed over the live service's processes)",
    multiprocess_mode="livesum",
)
EVENTS = Counter(
    "live_events",
    "Events fanned out to the clients of a topic (once per event, not per client), by name",
    ["event"],
)
DROPPED = Counter(
    "live_clients_dropped",
    "Streams closed because their client did not keep up (its buffer was full)",
)
FETCH_ERRORS = Counter(
    "live_fetch_errors",
    "Reads of a state from the booking service that failed (it was down or too slow)",
)
REDIS_ERRORS = Counter(
    "live_redis_errors",
    "Reads of the live streams that failed because Redis did",
)
STATE_READS = Counter(
    "live_state_reads",
    "States read from the booking service (by a topic's reader, or once for the clients that "
    "join a topic at the same moment), by kind",
    ["kind"],
)
STREAMS_REFUSED = Counter(
    "live_streams_refused",
    "Streams refused with 429 too_many_streams: `client` (one client's limit) or `total` "
    "(this process's)",
    ["limit"],
)
STREAM_CAPACITY = Gauge(
    "live_stream_capacity",
    "Streams the live service takes (LIVE_MAX_CONNECTIONS, or what its open-files limit leaves "
    "room for), summed over its processes",
    multiprocess_mode="livesum",
)
