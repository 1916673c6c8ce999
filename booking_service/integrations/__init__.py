"""FHIR R4, calendars and webhooks, built on the core's public functions."""
