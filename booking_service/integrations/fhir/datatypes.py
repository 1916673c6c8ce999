"""How this server writes FHIR: R4 (4.0.1) as `application/fhir+json`, instants with the
hospital's offset, References to its own resources. Pure: no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"


# Instants.


def fhir_instant(moment: datetime, zone: tzinfo) -> str:
    """An instant as FHIR writes one, with the offset of `zone` (UTC's when that offset is not
    in whole minutes, which FHIR cannot write)."""
    local = moment.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    if offset.total_seconds() % 60:
        local = moment.astimezone(UTC)
    return local.isoformat(timespec="seconds")


def parse_instant(text: str) -> datetime | None:
    """A FHIR instant (with its offset) as an aware datetime; None when it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


# References.


def reference(kind: str, fhir_id: str | None, display: str | None = None) -> dict:
    """A Reference to one of our resources; only `display` when its id cannot be written."""
    ref: dict = {} if fhir_id is None else {"reference": f"{kind}/{fhir_id}"}
    if display:
        ref["display"] = display
    return ref
