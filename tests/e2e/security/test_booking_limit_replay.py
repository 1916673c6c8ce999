"""Attack: multiply the booking limit with idempotent retries. An idempotent retry after
reaching the booking limit is answered with its stored answer, not 429 (the login and
registration limits, against real servers in one process: tests/integration/accounts/
test_accounts_and_limits.py).
"""

from __future__ import annotations

import uuid

from tests.helpers import Api, booking, create_hospital, next_weekday


def test_an_idempotent_replay_is_answered_past_the_booking_limit(stack, admin, gateway):
    limited = stack.extra_service("booking-limit-1", "booking", env={"BOOKING_LIMIT": "1"})
    try:
        hid = create_hospital(admin, 5)
        patient = gateway.new_patient()
        direct = Api(limited.url, patient.token)
        day = next_weekday(1)
        key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        body = booking(hid, day, "09:00")
        first = direct.post("/api/appointments", body, headers=key)
        assert first.status_code == 201, first.text
        again = direct.post("/api/appointments", body, headers=key)
        assert again.status_code == 201, again.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["appointment_id"] == first.json()["appointment_id"]
        other = direct.post("/api/appointments", booking(hid, day, "10:00"))
        assert other.status_code == 429 and other.json()["error"] == "rate_limited"
    finally:
        limited.stop()
