"""HL7 FHIR R4 (4.0.1) at /fhir/R4 (API.md, "Integrations"; README, "FHIR R4").

What maps to what, module by module:
- ids: our ids as FHIR ids, and back;
- scheduling: a hospital is a `Location`, a doctor a `Practitioner` (doctors are keyed per
  hospital), each hospital's own schedule and each doctor's a `Schedule`, a slot of a day a
  `Slot` (its remaining places in an extension);
- appointments: an appointment is an `Appointment`, its patient a contained `Patient`;
- appointment_create: the Appointment a client creates, as the REST API's booking body;
- outcomes: every error is an `OperationOutcome` whose `details` carry our stable reason;
- bundles: searchset Bundles; datatypes: instants, References, the media type;
- params: the search parameters and the CapabilityStatement;
- directory: every hospital and its doctors, for the searches that list them;
- service: the use cases (no Flask); routes: the HTTP layer (`init_app` registers it).
"""

from booking_service.integrations.fhir.routes import init_app

__all__ = ["init_app"]
