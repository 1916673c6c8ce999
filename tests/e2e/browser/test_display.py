"""The waiting-room screen (API.md, "Day of the visit": `GET /display/{hospital_id}`) in headless
Chromium through the gateway: the serial now being served follows the visit steps live, from
the stream `/api/live/{hospital_id}/{date}`.

Chromium and its driver come from Debian (tests/e2e/browser/browser_support.py); without them
this module is skipped, unless REQUIRE_BROWSER is set (CI sets it): then it fails.
"""

from __future__ import annotations

import pytest

from tests.e2e.browser import browser_support as support
from tests.e2e.browser.browser_support import open_tonight, shown, wait_for
from tests.helpers import booking

support.skip_without_chromium()

NO_SERIAL = "\u2014"
# Markup in a name must reach the screen as text.
NAME = "Evening <b>Clinic</b> & Co"


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, driven by Debian's chromedriver."""
    with support.chromium() as driver:
        yield driver


def test_the_screen_shows_each_serial_as_its_consultation_starts(stack, admin, gateway, browser):
    hid, today = open_tonight(admin, hospital_name=NAME)
    made = [admin.post("/api/appointments", booking(hid, today, "22:00")) for _ in range(2)]
    assert [r.status_code for r in made] == [201, 201], [r.text for r in made]
    first, second = (r.json() for r in made)
    assert (first["serial"], second["serial"]) == (1, 2)

    browser.get(f"{gateway.base}/display/{hid}")
    # Connected, and the stream's state drawn: nobody called yet, 4 of 6 places left.
    wait_for(
        browser,
        {
            "body[data-state='live'] #now-serving": NO_SERIAL,
            "[data-slot='22:00']": NO_SERIAL,
            ".slot-left": "4 left",
            "#hospital": NAME,
        },
    )

    for appointment, serial in ((first, "1"), (second, "2")):
        started = admin.post(f"/api/appointments/{appointment['appointment_id']}/start")
        assert started.status_code == 200, started.text
        wait_for(browser, {"#now-serving": serial, "[data-slot='22:00']": serial})
    assert shown(browser, "#now-serving-slot") == "Slot 22:00"
    assert shown(browser, "#status") == ""
