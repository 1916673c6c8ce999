"""Errors as FHIR R4 `OperationOutcome`s whose `details` carry our stable reason. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from fhir.resources.operationoutcome import OperationOutcome

# Our own code system of reasons (a URN: a name, not an address).
ERROR_SYSTEM = "urn:slotbook:error"

# An error's HTTP status -> the OperationOutcome issue type (R4 IssueType); some reasons
# have a closer one.
_ISSUE_BY_REASON = {
    "malformed_json": "structure",
    "duplicate_booking": "duplicate",
    "rate_limited": "throttled",
    "too_many_holds": "throttled",
    "gateway_timeout": "timeout",
}
_ISSUE_BY_STATUS = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    414: "too-costly",
    415: "not-supported",
    422: "business-rule",
    428: "required",
    429: "throttled",
    502: "transient",
    503: "transient",
    504: "timeout",
}
# The fields of the REST booking body, as the FHIR Appointment of a create names them.
_FIELD_PATHS = {
    "hospital_id": "Appointment.slot[0].reference",
    "practitioner_id": "Appointment.slot[0].reference",
    "date": "Appointment.slot[0].reference",
    "slot": "Appointment.slot[0].reference",
    "patient": "Appointment.contained[0]",
    "patient.name": "Appointment.contained[0].name[0]",
    "patient.phone": "Appointment.contained[0].telecom",
    "reason": "Appointment.reasonCode[0].text",
    "appointment_type": "Appointment.appointmentType.coding[0].code",
}
MAX_ISSUES = 20


def _flatten(errors: object, path: str = "") -> list[tuple[str, str]]:
    """(field, message) pairs of an error document's `errors` (nested as marshmallow nests)."""
    if isinstance(errors, Mapping):
        pairs = []
        for key, value in errors.items():
            name = str(key) if not path else f"{path}.{key}"
            pairs.extend(_flatten(value, name))
        return pairs
    if isinstance(errors, list | tuple):
        pairs = []
        for value in errors:
            pairs.extend(_flatten(value, path) if isinstance(value, Mapping) else [(path, value)])
        return pairs
    return [] if errors is None else [(path, str(errors))]


def _expression(field: str) -> str | None:
    """The FHIRPath of a field an error names: our own checks name FHIRPaths; the REST body's
    fields are mapped to where a FHIR create gives them."""
    if field[:1].isupper():
        return field
    return _FIELD_PATHS.get(field)


def operation_outcome(
    status: int, reason: str, message: str, errors: object = None
) -> OperationOutcome:
    """An error as an OperationOutcome: one issue with our reason (`details.coding`, system
    ERROR_SYSTEM) and message, then one per invalid field (its FHIRPath in `expression`, or
    its name in `diagnostics` for a search parameter)."""
    if status >= 500:
        code = "exception" if status == 500 else _ISSUE_BY_STATUS.get(status, "transient")
    else:
        code = _ISSUE_BY_STATUS.get(status, "processing")
    code = _ISSUE_BY_REASON.get(reason, code)
    text = message or HTTPStatus(status).phrase
    issues: list[dict] = [
        {
            "severity": "error",
            "code": code,
            "details": {"coding": [{"system": ERROR_SYSTEM, "code": reason}], "text": text},
            "diagnostics": text,
        }
    ]
    for field, why in _flatten(errors)[: MAX_ISSUES - 1]:
        issue: dict = {"severity": "error", "code": "invalid" if status < 500 else code}
        expression = _expression(field) if field else None
        if expression is not None:
            issue["expression"] = [expression]
            issue["diagnostics"] = str(why)
        else:
            issue["diagnostics"] = f"{field}: {why}" if field else str(why)
        issues.append(issue)
    return OperationOutcome(issue=issues)


def outcome_of_error_body(status: int, body: object) -> OperationOutcome:
    """The OperationOutcome of an answer in the contract's error shape (code, error, message,
    errors), whatever layer made it."""
    doc = body if isinstance(body, Mapping) else {}
    reason = doc.get("error") if isinstance(doc.get("error"), str) else None
    message = doc.get("message") if isinstance(doc.get("message"), str) else None
    return operation_outcome(
        status,
        reason or "error",
        message or HTTPStatus(status).phrase,
        doc.get("errors"),
    )
