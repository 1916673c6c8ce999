"""The waiting-room screen (API.md, "Day of the visit": `GET /display/{hospital_id}`) in headless
Chromium through the gateway: the serial now being served follows the visit steps live, from
the stream `/api/live/{hospital_id}/{date}`.

Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`); Selenium
gets both paths, so Selenium Manager never downloads anything. Without them this module is
skipped, unless REQUIRE_BROWSER is set (CI sets it): then it fails.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import Api, booking, hospital_doc

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
REQUIRED = os.environ.get("REQUIRE_BROWSER", "") not in ("", "0")

if MISSING and not REQUIRED:
    pytest.skip(
        "Chromium not installed (apt-get install chromium chromium-driver); browser test skipped",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402  (a dev dependency; after the skip on purpose)
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

NO_SERIAL = "\u2014"
WAIT_SECONDS = 10
# Zones 25 hours apart: in one of them it is before 22:00 now, so its 22:00 slot is bookable.
ZONES = ("Pacific/Kiritimati", "Asia/Dhaka", "UTC", "America/New_York", "Pacific/Pago_Pago")
# Markup in a name must reach the screen as text.
NAME = "Evening <b>Clinic</b> & Co"


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, driven by Debian's chromedriver."""
    if MISSING:
        pytest.fail(f"REQUIRE_BROWSER is set but {', '.join(MISSING)} is missing", pytrace=False)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,800",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_tonight(admin: Api) -> tuple[str, str]:
    """A hospital open every day 22:00-23:00 in a zone where that is still ahead; its id and
    today's date there."""
    zone = next(z for z in ZONES if datetime.now(ZoneInfo(z)).hour < 22)
    slots = [{"start": "22:00", "end": "23:00", "capacity": 6}]
    doc = hospital_doc(
        hospital_name=NAME,
        timezone=zone,
        schedule={str(d): {"slots": slots} for d in range(7)},
    )
    resp = admin.post("/api/dynamic-slots/hospitals", doc)
    assert resp.status_code == 201, resp.text
    return doc["hospital_id"], datetime.now(ZoneInfo(zone)).date().isoformat()


def shown(driver, css: str) -> str | None:
    """The visible text of the first element matching `css`, or None when there is none."""
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else None


def wait_for(driver, expected: dict[str, str]) -> None:
    """Wait until each selector shows exactly its text; else fail showing what the page shows."""
    try:
        WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(
            lambda d: all(shown(d, css) == text for css, text in expected.items())
        )
        return
    except TimeoutException:
        pass
    seen = {css: shown(driver, css) for css in expected}
    console = [entry["message"] for entry in driver.get_log("browser")]
    assert seen == expected, f"after {WAIT_SECONDS} s; browser console: {console}"


def test_the_screen_shows_each_serial_as_its_consultation_starts(stack, admin, gateway, browser):
    hid, today = open_tonight(admin)
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
