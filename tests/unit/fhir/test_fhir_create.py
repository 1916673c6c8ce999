"""A FHIR create's body (booking_service/integrations/fhir/appointment_create.py): the
booking it asks for in our terms, or 400 naming each problem by its FHIRPath.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_service.integrations.fhir import appointment_create, outcomes
from shared.errors import ValidationError
from tests.unit.fhir.fhir_support import check_resource, create_body, dump


def test_a_create_asks_for_a_booking_in_our_terms():
    wanted = appointment_create.booking_request(create_body())
    assert wanted.body() == {
        "hospital_id": "h_1",
        "date": "2026-11-28",
        "slot": "17:00",
        "patient": {"name": "Rahim Uddin", "phone": "+8801712345678"},
        "practitioner_id": "dr_a",
        "appointment_type": "new",
        "reason": "follow-up",
    }
    minimal = appointment_create.booking_request(
        create_body(
            slot=[{"reference": "Slot/h..1.20261128.1700"}],
            participant=[{"actor": {"reference": "#p1"}, "status": "needs-action"}],
            appointmentType=None,
            reasonCode=None,
            id="ignored",
            meta={"versionId": "7"},
            contained=[
                {
                    "resourceType": "Patient",
                    "id": "p1",
                    "name": [{"text": "Rahim"}],
                    "telecom": [{"system": "phone", "value": "01712345678"}],
                }
            ],
        )
    )
    assert minimal.body() == {
        "hospital_id": "h_1",
        "date": "2026-11-28",
        "slot": "17:00",
        "patient": {"name": "Rahim", "phone": "01712345678"},
    }


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"resourceType": "Patient"}, "Appointment"),
        ({"status": "cancelled"}, "Appointment.status"),
        ({"status": 5}, "Appointment.status"),
        ({"comment": "hi"}, "Appointment.comment"),
        ({"slot": []}, "Appointment.slot"),
        ({"slot": [{"reference": "Slot/h_1.20261128.1700"}]}, "Appointment.slot[0].reference"),
        ({"slot": [{"reference": "Slot/H..1.20261128.1700"}]}, "Appointment.slot[0].reference"),
        (
            {"slot": [{"reference": "http://x/Slot/h..1.20261128.1700"}]},
            "Appointment.slot[0].reference",
        ),
        ({"slot": [{"reference": "Schedule/h..1"}]}, "Appointment.slot[0].reference"),
        (
            {
                "slot": [
                    {"reference": "Slot/h..1.20261128.1700"},
                    {"reference": "Slot/h..1.20261128.1800"},
                ]
            },
            "Appointment.slot",
        ),
        ({"contained": []}, "Appointment.contained"),
        (
            {"participant": [{"actor": {"reference": "#other"}, "status": "accepted"}]},
            "Appointment.participant",
        ),
        (
            {
                "participant": [
                    {"actor": {"reference": "#p1"}, "status": "accepted"},
                    {"actor": {"reference": "Location/h..2"}, "status": "accepted"},
                ]
            },
            "Appointment.participant[1].actor.reference",
        ),
        (
            {
                "participant": [
                    {"actor": {"reference": "#p1"}, "status": "accepted"},
                    {"actor": {"reference": "Patient/1"}, "status": "accepted"},
                ]
            },
            "Appointment.participant[1].actor.reference",
        ),
        ({"participant": [{"actor": {"reference": "#p1"}}]}, "Appointment.participant[0].status"),
        (
            {"appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "new"}]}},
            "Appointment.appointmentType.coding[0].system",
        ),
        ({"appointmentType": {"text": "new"}}, "Appointment.appointmentType.coding"),
        ({"reasonCode": [{"coding": [{"code": "x"}]}]}, "Appointment.reasonCode[0].coding"),
        ({"start": "tomorrow"}, "Appointment.start"),
    ],
)
def test_a_create_that_is_not_the_shape_we_book_is_400_by_fhirpath(changes, path):
    with pytest.raises(ValidationError) as caught:
        appointment_create.booking_request(create_body(**changes))
    assert caught.value.status == 400
    assert any(key.startswith(path) for key in caught.value.errors), caught.value.errors


@pytest.mark.parametrize(
    ("patient", "path"),
    [
        ({"birthDate": "1990-01-01"}, "Appointment.contained[0].birthDate"),
        ({"name": []}, "Appointment.contained[0].name"),
        ({"name": [{"given": ["A"]}, {"text": "B"}]}, "Appointment.contained[0].name"),
        (
            {"name": [{"family": "Uddin", "prefix": ["Mr"]}]},
            "Appointment.contained[0].name[0].prefix",
        ),
        ({"telecom": []}, "Appointment.contained[0].telecom"),
        (
            {"telecom": [{"system": "email", "value": "a@b.c"}]},
            "Appointment.contained[0].telecom[0].system",
        ),
        (
            {"telecom": [{"system": "phone", "value": "1"}, {"system": "phone", "value": "2"}]},
            "Appointment.contained[0].telecom[1]",
        ),
        ({"id": None}, "Appointment.contained[0].id"),
    ],
)
def test_the_patient_gives_a_name_and_one_phone(patient, path):
    base = create_body()["contained"][0]
    contained = {k: v for k, v in {**base, **patient}.items() if v is not None}
    with pytest.raises(ValidationError) as caught:
        appointment_create.booking_request(create_body(contained=[contained]))
    assert any(key.startswith(path) for key in caught.value.errors), caught.value.errors


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceType",
                    "status",
                    "slot",
                    "participant",
                    "contained",
                    "reference",
                    "actor",
                    "name",
                    "telecom",
                    "system",
                    "value",
                    "id",
                    "text",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    json_values, st.dictionaries(st.sampled_from(sorted(create_body())), json_values, max_size=3)
)
def test_any_body_is_a_booking_or_a_400(value, changes):
    for candidate in (value, create_body(**changes)):
        try:
            wanted = appointment_create.booking_request(candidate)
        except ValidationError as exc:
            assert exc.status == 400 and exc.errors
            check_resource(
                dump(outcomes.operation_outcome(400, exc.reason, exc.message, exc.errors))
            )
        else:
            assert isinstance(wanted.name, str) and isinstance(wanted.phone, str)


@pytest.mark.parametrize("kind", ["", "Nope", "Type", 7])
def test_a_contained_resource_of_no_known_type_is_a_400(kind):
    """Found by the property above: fhir.resources raises LookupError for these."""
    body = create_body()
    body["contained"] = [{"resourceType": kind}]
    with pytest.raises(ValidationError) as caught:
        appointment_create.booking_request(body)
    assert caught.value.status == 400
