"""The front desk (API.md v1.2, "The front desk": `GET /desk/{hospital_id}`) in headless Chromium
through the gateway: two desk windows signed in (staff, admin), a walk-in booked, checked in and
called next (the N key) at one of them; the other desk and the waiting-room display follow from
the day's stream within a few seconds. A patient account is refused the desk's actions (the
API's 403 shown), and a token the API no longer takes is dropped.

With SAVE_SCREENSHOTS=1 the first test writes the README's screenshots: docs/desk.png
(1280 x 800), docs/desk-portrait.png (800 x 1280) and docs/display.png (1280 x 800).

Chromium and its driver come from Debian (tests/e2e/browser/browser_support.py); without them
this module is skipped, unless REQUIRE_BROWSER is set (CI sets it): then it fails.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.browser import browser_support as support
from tests.e2e.browser.browser_support import (
    open_tonight,
    screenshot,
    set_viewport,
    shown,
    wait_for,
)
from tests.helpers import Api, booking

support.skip_without_chromium()

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

NO_SERIAL = "\u2014"
OFFLINE = "Offline \u2014 reconnecting\u2026"
# How soon a change made elsewhere must show in a window (the stream brings it in well under
# a second; the margin is for a loaded machine).
LIVE_SECONDS = 5
DOCTOR = "nasreen"
PASSWORD = "front-desk-1"
# The desk's appointment types: a new patient takes two places of a slot.
TYPES = {
    "new": {"name": "New patient", "units": 2, "minutes": 12},
    "followup": {"name": "Follow-up", "units": 1, "minutes": 6},
}


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (its first window stays blank)."""
    with support.chromium() as driver:
        yield driver


@pytest.fixture
def windows(browser):
    """Open pages in new windows (each its own sessionStorage, as two desks), all closed at
    the end."""
    first = browser.current_window_handle
    opened: list[str] = []

    def open_page(url: str, width: int, height: int) -> str:
        browser.switch_to.new_window("window")
        opened.append(browser.current_window_handle)
        set_viewport(browser, width, height)
        browser.get(url)
        return browser.current_window_handle

    yield open_page
    for handle in opened:
        browser.switch_to.window(handle)
        browser.close()
    browser.switch_to.window(first)


def clinic(admin: Api) -> tuple[str, str]:
    """A clinic open tonight 22:00-23:00 (12 places) with a doctor and appointment types, in a
    zone where it is not 21:00 yet (an hour for the test before the slot starts)."""
    return open_tonight(
        admin,
        before=21,
        hospital_name="Green Road Evening Clinic",
        schedule={str(d): {"slots": [{"start": "22:00", "end": "23:00"}]} for d in range(7)},
        max_appointments_per_slot=12,
        appointment_types=TYPES,
        default_appointment_type="followup",
        practitioners={DOCTOR: {"name": "Dr. Nasreen Haque", "specialty": "Medicine"}},
    )


def account(admin: Api, role: str) -> str:
    """A new staff or admin account (password PASSWORD); its email."""
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    resp = admin.post(
        "/api/auth/users",
        {
            "name": f"Desk {role}",
            "email": email,
            "phone": "+8801711111111",
            "password": PASSWORD,
            "role": role,
        },
    )
    assert resp.status_code == 201, resp.text
    return email


def book(api: Api, hid: str, today: str, name: str, kind: str = "followup") -> dict:
    body = booking(hid, today, "22:00", name=name)
    body |= {"practitioner_id": DOCTOR, "appointment_type": kind}
    resp = api.post("/api/appointments", body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def sign_in(driver, email: str, password: str) -> None:
    """Sign in with the form (Enter sends it); wait for the desk and its stream."""
    wait_for(driver, {"body[data-view='sign-in'] #sign-in-button": "Sign in"})
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(password + Keys.ENTER)
    wait_for(driver, {"body[data-view='desk'][data-connection='live'] #connection": "Live"})


def row(serial: int | str, status: str | None = None) -> str:
    """The CSS selector of a serial's row (in that status)."""
    where = f"[data-status='{status}']" if status else ""
    return f".row[data-serial='{serial}']{where}"


def offline(driver, off: bool) -> None:
    """Take the current window's network away (Chromium's network emulation), or give it back."""
    driver.execute_cdp_cmd("Network.enable", {})
    conditions = {"offline": off, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)


def texts(driver, css: str) -> list[str]:
    """The text of every element matching `css`, read at one instant."""
    script = "return Array.from(document.querySelectorAll(arguments[0]), n => n.innerText)"
    return driver.execute_script(script, css)


def test_two_desks_and_the_display_follow_a_walk_in_called_next(
    stack, gateway, admin, browser, windows
):
    hid, today = clinic(admin)
    staff = account(admin, "staff")
    boss = account(admin, "admin")
    desk = f"{gateway.base}/desk/{hid}?practitioner_id={DOCTOR}"

    a = windows(desk, 1280, 800)  # a tablet on its side
    sign_in(browser, staff, PASSWORD)
    assert shown(browser, "#user") == f"{staff} (staff)"
    assert shown(browser, "#queue option:checked") == "Dr. Nasreen Haque"
    b = windows(desk, 800, 1280)  # another desk, upright
    sign_in(browser, boss, PASSWORD)
    display = windows(f"{gateway.base}/display/{hid}?practitioner_id={DOCTOR}", 1280, 800)
    # Before the first call the screen says when calling starts (it used to be blank).
    wait_for(
        browser,
        {
            "body[data-state='live'] #now-serving": NO_SERIAL,
            "#calling-starts": "Calling starts at 22:00",
        },
    )

    # A walk-in at desk A: a new patient (two places) in the only slot with room.
    browser.switch_to.window(a)
    browser.find_element(By.ID, "walk-in-name").send_keys("Walk-in Patient")
    browser.find_element(By.ID, "walk-in-phone").send_keys("+8801799000001")
    Select(browser.find_element(By.ID, "walk-in-type")).select_by_value("new")
    wait_for(browser, {"#walk-in-slot option:checked": "10:00 PM - 11:00 PM \u00b7 12 left"})
    browser.find_element(By.ID, "book").click()
    wait_for(browser, {"#slip-serial": "1", "#slip-slot": "10:00 PM - 11:00 PM"})
    assert shown(browser, "#slip-name") == "Walk-in Patient"
    assert shown(browser, "#slip-detail") == "Dr. Nasreen Haque \u00b7 New patient"
    booked_at = time.monotonic()

    # Desk B sees it from the stream; then a patient's own booking (a name with markup, shown
    # as text) and one made by phone through the API reach both desks.
    browser.switch_to.window(b)
    wait_for(browser, {f"{row(1, 'confirmed')} .row-name": "Walk-in Patient"}, LIVE_SECONDS)
    assert time.monotonic() - booked_at < LIVE_SECONDS
    patient_name = "Nusrat <b>Jahan</b>"
    book(gateway.new_patient(), hid, today, patient_name)
    book(admin, hid, today, "Abdul Karim")
    wait_for(
        browser,
        {f"{row(2)} .row-name": patient_name, f"{row(3)} .row-name": "Abdul Karim"},
        LIVE_SECONDS,
    )
    browser.switch_to.window(a)
    wait_for(browser, {f"{row(2)} .row-name": patient_name}, LIVE_SECONDS)
    assert texts(browser, ".row-serial") == ["1", "2", "3"]

    # Check the walk-in in, then call next with the N key: it starts (the only one checked in).
    browser.find_element(By.CSS_SELECTOR, f"{row(1)} [data-step='check-in']").click()
    wait_for(browser, {f"{row(1, 'checked_in')} .row-status": "Checked in"})
    ActionChains(browser).send_keys("n").perform()
    wait_for(browser, {f"{row(1, 'in_consultation')} .row-status": "In consultation"})
    called_at = time.monotonic()

    # The other desk and the waiting room follow within a few seconds.
    browser.switch_to.window(b)
    wait_for(
        browser,
        {
            f"{row(1, 'in_consultation')} .row-status": "In consultation",
            "[data-count='in_consultation']": "1",
            "[data-count='waiting']": "2",
            "#now-serving": "1",
        },
        LIVE_SECONDS,
    )
    browser.switch_to.window(display)
    wait_for(browser, {"#now-serving": "1", "#now-serving-slot": "Slot 22:00"}, LIVE_SECONDS)
    assert time.monotonic() - called_at < 2 * LIVE_SECONDS
    # Under NOW SERVING: the next serials; no "calling starts" any more.
    assert texts(browser, "#next .next-serial") == ["2", "3"]
    assert shown(browser, "#calling-starts") == ""

    # Check 2 in at desk B: desk A sees it (another desk's press, live).
    browser.switch_to.window(b)
    browser.find_element(By.CSS_SELECTOR, f"{row(2)} [data-step='check-in']").click()
    browser.switch_to.window(a)
    wait_for(browser, {f"{row(2, 'checked_in')} .row-status": "Checked in"}, LIVE_SECONDS)
    # The API's estimated call times (GET /api/appointments/{id}/queue): the slot starts at
    # 22:00, after the consultation under way; then 2 (checked in) and 3, 6 minutes each.
    wait_for(
        browser,
        {f"{row(2)} .row-eta": "Call ~10:00 PM", f"{row(3)} .row-eta": "Call ~10:06 PM"},
    )
    assert browser.execute_script("return sessionStorage.length") == 2

    # Desk B loses its network: it says so. Meanwhile A checks 3 in; back online, B reconnects
    # by itself and shows it.
    browser.switch_to.window(b)
    offline(browser, True)
    wait_for(browser, {"body[data-connection='offline'] #connection": OFFLINE})
    browser.switch_to.window(a)
    browser.find_element(By.CSS_SELECTOR, f"{row(3)} [data-step='check-in']").click()
    wait_for(browser, {f"{row(3, 'checked_in')} .row-status": "Checked in"})
    browser.switch_to.window(b)
    assert shown(browser, f"{row(3)} .row-status") == "Booked"
    offline(browser, False)
    wait_for(
        browser,
        {"#connection": "Live", f"{row(3, 'checked_in')} .row-status": "Checked in"},
        LIVE_SECONDS,
    )
    # No script error anywhere (only B's requests while it was offline failed).
    console = [
        e
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "ERR_INTERNET_DISCONNECTED" not in e["message"]
    ]
    assert console == [], console
    browser.switch_to.window(a)

    screenshot(browser, "desk.png")
    browser.switch_to.window(b)
    # B asks the call times again after its reconnection.
    wait_for(browser, {f"{row(3)} .row-eta": "Call ~10:06 PM"})
    screenshot(browser, "desk-portrait.png")
    browser.switch_to.window(display)
    wait_for(browser, {"#now-serving": "1"})
    screenshot(browser, "display.png")


def test_a_patient_account_is_refused_the_desks_actions(stack, gateway, admin, browser, windows):
    hid, today = clinic(admin)
    email = f"p-{uuid.uuid4().hex[:12]}@example.com"
    resp = gateway.post(
        "/api/auth/register",
        {"name": "A Patient", "email": email, "phone": "+8801700000009", "password": PASSWORD},
    )
    assert resp.status_code == 201, resp.text
    patient = gateway.login(email, PASSWORD)
    # Markup in the patient's own name stays text (no element, no script run).
    mine = book(patient, hid, today, "<img src=x onerror=window.pwned=1>")

    windows(f"{gateway.base}/desk/{hid}?practitioner_id={DOCTOR}", 800, 1280)
    sign_in(browser, email, PASSWORD)
    assert "patient account" in shown(browser, "#role-warning")
    # A patient's token lists only its own appointments.
    wait_for(browser, {f"{row(1, 'confirmed')} .row-name": "<img src=x onerror=window.pwned=1>"})
    assert browser.find_elements(By.CSS_SELECTOR, ".row img") == []
    assert browser.execute_script("return window.pwned === undefined")

    # Check-in: the API refuses it (403) and the page says so; nothing changed.
    browser.find_element(By.CSS_SELECTOR, f"{row(1)} [data-step='check-in']").click()
    wait_for(browser, {"#message-text": "This action needs the role: staff, admin"})
    assert browser.find_element(By.ID, "message").get_attribute("data-error") == "forbidden"
    assert patient.get(f"/api/appointments/{mine['appointment_id']}").json()["status"] == (
        "confirmed"
    )
    # Call next has nobody checked in to call: it says so too.
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    ActionChains(browser).send_keys("n").perform()
    wait_for(
        browser, {"#message-text": "Nobody is checked in: check a patient in, then call next."}
    )

    # Sign-out drops the token and every name from the page.
    browser.find_element(By.ID, "sign-out").click()
    wait_for(browser, {"#sign-in-message": "Signed out."})
    assert browser.execute_script("return sessionStorage.length") == 0
    assert browser.find_elements(By.CSS_SELECTOR, ".row") == []

    # A token the API does not take (expired, forged): the first 401 drops it.
    browser.execute_script(
        "sessionStorage.setItem('slotbook.desk.token', 'not-a-token');"
        'sessionStorage.setItem(\'slotbook.desk.user\', \'{"email": "x@example.com", '
        '"role": "staff"}\');'
    )
    browser.refresh()
    wait_for(
        browser,
        {"body[data-view='sign-in'] #sign-in-message": "Your session has ended: sign in again."},
    )
    assert browser.execute_script("return sessionStorage.length") == 0
