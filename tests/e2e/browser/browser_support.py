"""What the browser tests share: Debian's Chromium and chromedriver (found, or the module
skipped; required when REQUIRE_BROWSER is set), a headless browser, a hospital open tonight,
and waiting for what a page shows.

Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`); Selenium
gets both paths, so Selenium Manager never downloads anything. Selenium is imported only once a
browser is started, after a module's skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import Api, hospital_doc

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
REQUIRED = os.environ.get("REQUIRE_BROWSER", "") not in ("", "0")
# Zones 25 hours apart: in one of them it is still early enough for tonight's 22:00 slot.
ZONES = ("Pacific/Kiritimati", "Asia/Dhaka", "UTC", "America/New_York", "Pacific/Pago_Pago")
# With SAVE_SCREENSHOTS=1 the browser tests write the README's screenshots here.
DOCS = Path(__file__).resolve().parents[3] / "docs"
SAVE_SCREENSHOTS = os.environ.get("SAVE_SCREENSHOTS", "") not in ("", "0")


def skip_without_chromium() -> None:
    """Skip the calling test module (at its import) when Chromium or its driver is missing,
    unless REQUIRE_BROWSER is set: then its browser fixture fails instead."""
    if MISSING and not REQUIRED:
        pytest.skip(
            "Chromium not installed (apt-get install chromium chromium-driver); "
            "browser test skipped",
            allow_module_level=True,
        )


@contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator:
    """A headless Chromium, driven by Debian's chromedriver (its console log kept)."""
    if MISSING:
        pytest.fail(f"REQUIRE_BROWSER is set but {', '.join(MISSING)} is missing", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--lang=en-US",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def set_viewport(driver, width: int, height: int) -> None:
    """Size the current window so that its page gets exactly width x height CSS pixels."""
    extra_w, extra_h = driver.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(width + extra_w, height + extra_h)


def open_tonight(admin: Api, before: int = 22, **changes) -> tuple[str, str]:
    """A new hospital open every day 22:00-23:00 (six places unless `changes` say otherwise)
    in a zone where it is not yet `before` o'clock; its id and today's date there."""
    zone = next(z for z in ZONES if datetime.now(ZoneInfo(z)).hour < before)
    slots = [{"start": "22:00", "end": "23:00", "capacity": 6}]
    fields = {"timezone": zone, "schedule": {str(d): {"slots": slots} for d in range(7)}}
    doc = hospital_doc(**{**fields, **changes})
    resp = admin.post("/api/dynamic-slots/hospitals", doc)
    assert resp.status_code == 201, resp.text
    return doc["hospital_id"], datetime.now(ZoneInfo(zone)).date().isoformat()


def shown(driver, css: str) -> str | None:
    """The visible text of the first element matching `css`, or None when there is none (or
    it was replaced while being read: a page redrawing)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else None
    except StaleElementReferenceException:
        return None


def wait_for(driver, expected: dict[str, str], seconds: float = 10) -> float:
    """Wait until each selector shows exactly its text; the seconds it took. Else fail showing
    what the page shows and its console."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    started = datetime.now()
    try:
        WebDriverWait(driver, seconds, poll_frequency=0.05).until(
            lambda d: all(shown(d, css) == text for css, text in expected.items())
        )
        return (datetime.now() - started).total_seconds()
    except TimeoutException:
        pass
    seen = {css: shown(driver, css) for css in expected}
    console = [entry["message"] for entry in driver.get_log("browser")]
    assert seen == expected, f"after {seconds} s; browser console: {console}"
    return seconds


def screenshot(driver, name: str) -> None:
    """Write docs/<name> from the current window, when SAVE_SCREENSHOTS is set."""
    if SAVE_SCREENSHOTS:
        DOCS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(DOCS / name)), name
