"""Searchset Bundles (FHIR R4), built with fhir.resources' models. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from fhir.resources.bundle import Bundle
from fhir.resources.operationoutcome import OperationOutcome


def searchset(
    entries: Iterable[tuple[str, object]],
    self_url: str,
    next_url: str | None = None,
    total: int | None = None,
    warning: str | None = None,
) -> Bundle:
    """A searchset Bundle: each (fullUrl, resource) a match, `next` when there is more, and an
    OperationOutcome (search mode `outcome`) when the answer is incomplete."""
    items: list[dict] = [
        {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
        for url, resource in entries
    ]
    if warning:
        outcome = OperationOutcome(
            issue=[{"severity": "warning", "code": "incomplete", "diagnostics": warning}]
        )
        items.append({"resource": outcome, "search": {"mode": "outcome"}})
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    fields: dict = {"entry": items} if items else {}
    if total is not None:
        fields["total"] = total
    return Bundle(type="searchset", link=links, **fields)
