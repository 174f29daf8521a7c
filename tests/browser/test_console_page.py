"""The operator console in a real browser: sign in, the fleet by risk, a motor, acknowledge with a confirmation.

Headless Chromium (the distribution's package) driven by Selenium against the console server's contract
(docs/console.md), served under the strict content security policy the CDN sends: any script, style or
request the policy refuses shows in the browser's log, and every test ends by checking that log is clean.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.fake_console import FakeConsole
from tests.browser.pages import alarm_state, opened, sign_in, visible, wait

PHONE = (390, 844)


@pytest.fixture
def console() -> Iterator[FakeConsole]:
    with FakeConsole() as server:
        yield server


@pytest.fixture
def expected_errors() -> list[str]:
    """Texts of browser-log errors a test causes on purpose (a request the API refuses)."""
    return []


@pytest.fixture
def page(browser: Chrome, console: FakeConsole, expected_errors: list[str]) -> Iterator[Chrome]:
    """The fake console, signed out; afterwards the browser's log must hold no error."""
    with opened(browser, console.url, expected_errors) as driver:
        yield driver


def test_an_operator_signs_in_sees_the_fleet_by_risk_and_acknowledges_an_active_alarm(
    page: WebDriver, console: FakeConsole
) -> None:
    # Given an operator signed in: the fleet, the motor with an ACTIVE alarm first
    sign_in(page, "operator")
    assert "local-operator" in visible(page, "#who").text
    rows = page.find_elements(By.CSS_SELECTOR, "#fleet-rows tr[data-motor]")
    assert [row.get_attribute("data-motor") for row in rows] == ["motor-002", "motor-004", "motor-001"]
    assert rows[0].get_attribute("data-worst") == "ACTIVE"
    assert "predictive: ACTIVE" in rows[0].text
    assert "83 %" in rows[0].text

    # When they open that motor
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    assert alarm_state(page, "predictive") == "ACTIVE"
    assert "bearing temperature trend (1 h vs 24 h)" in visible(page, "#motor-drivers").text
    assert page.find_elements(By.CSS_SELECTOR, '#motor-charts figure[data-chart="failure_probability"] canvas')
    buttons = page.find_elements(By.CSS_SELECTOR, 'li[data-alarm="predictive"] button[data-action]')
    assert [b.get_attribute("data-action") for b in buttons] == ["acknowledge", "snooze", "disable", "reset"]

    # Then acknowledging asks first: Cancel leaves the alarm as it was
    acknowledge = page.find_element(By.CSS_SELECTOR, 'li[data-alarm="predictive"] button[data-action="acknowledge"]')
    acknowledge.click()
    dialog = visible(page, "dialog#confirm")
    assert "Acknowledge the predictive alarm of motor-002?" in dialog.text
    dialog.find_element(By.ID, "confirm-cancel").click()
    wait(page, lambda d: not d.find_element(By.ID, "confirm").is_displayed(), "the dialog closes")
    assert console.actions == []
    assert alarm_state(page, "predictive") == "ACTIVE"

    # And confirming acknowledges it, under the signed-in user's name
    page.find_element(By.CSS_SELECTOR, 'li[data-alarm="predictive"] button[data-action="acknowledge"]').click()
    visible(page, "dialog#confirm select[name=verdict]")
    visible(page, "#confirm-ok").click()
    wait(page, lambda d: alarm_state(d, "predictive") == "ACKNOWLEDGED", "the alarm shows ACKNOWLEDGED")
    assert [(a["action"], a["alarm"], a["operator"]) for a in console.actions] == [
        ("acknowledge", "predictive", "local-operator")
    ]
    assert "operator" not in {key for key in console.actions[0] if key != "operator"}
    buttons = page.find_elements(By.CSS_SELECTOR, 'li[data-alarm="predictive"] button[data-action]')
    assert [b.get_attribute("data-action") for b in buttons] == ["snooze", "disable", "reset"]
    wait(page, lambda d: "local-operator" in d.find_element(By.ID, "transitions-rows").text, "the transition's row")

    # And the fleet shows the new state too
    page.find_element(By.CSS_SELECTOR, ".back a").click()
    wait(page, lambda d: "predictive: ACKNOWLEDGED" in d.find_element(By.ID, "fleet-rows").text, "fleet updated")


def test_a_snooze_takes_the_duration_chosen_in_the_confirmation(page: WebDriver, console: FakeConsole) -> None:
    sign_in(page, "operator")
    page.get(console.url + "#/motors/motor-004")
    page.refresh()
    visible(page, 'li[data-alarm="fluid_overtemperature"] button[data-action="snooze"]').click()
    duration = visible(page, "dialog#confirm select[name=snooze_minutes]")
    duration.find_element(By.CSS_SELECTOR, 'option[value="240"]').click()
    page.find_element(By.ID, "confirm-ok").click()
    wait(page, lambda d: alarm_state(d, "fluid_overtemperature") == "SNOOZED", "the alarm shows SNOOZED")
    assert console.actions[0]["snooze_minutes"] == 240
    assert "until" in page.find_element(By.CSS_SELECTOR, 'li[data-alarm="fluid_overtemperature"] .since').text


def test_a_viewer_sees_the_fleet_and_a_motor_but_no_action_button(page: WebDriver) -> None:
    sign_in(page, "viewer")
    assert "viewer" in visible(page, "#who").text
    page.find_element(By.CSS_SELECTOR, '#fleet-rows tr[data-motor="motor-002"] a').click()
    assert alarm_state(page, "predictive") == "ACTIVE"
    visible(page, '#motor-charts figure[data-chart="failure_probability"]')
    assert page.find_elements(By.CSS_SELECTOR, "#view-motor button[data-action]") == []


def test_the_page_is_usable_from_the_keyboard(page: WebDriver, console: FakeConsole) -> None:
    sign_in(page, "operator")
    # Tab from the top of the page reaches the riskiest motor's link; Enter opens it
    page.find_element(By.TAG_NAME, "body").click()
    link = page.find_element(By.CSS_SELECTOR, '#fleet-rows tr[data-motor="motor-002"] a')
    for _ in range(10):
        page.switch_to.active_element.send_keys(Keys.TAB)
        if page.switch_to.active_element == link:
            break
    assert page.switch_to.active_element == link, "the motor's link is in the tab order"
    link.send_keys(Keys.ENTER)
    visible(page, 'li[data-alarm="predictive"] button[data-action="acknowledge"]')

    # Every action is a real button with a name that says what it does
    acknowledge = page.find_element(By.CSS_SELECTOR, 'li[data-alarm="predictive"] button[data-action="acknowledge"]')
    assert acknowledge.tag_name == "button"
    assert acknowledge.get_attribute("aria-label") == "Acknowledge the predictive alarm"

    # Enter opens the confirmation with the focus in it; Escape closes it and nothing is done
    acknowledge.send_keys(Keys.ENTER)
    visible(page, "dialog#confirm")
    assert page.switch_to.active_element.get_attribute("id") == "confirm-ok"
    page.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(page, lambda d: not d.find_element(By.ID, "confirm").is_displayed(), "Escape closes the dialog")
    assert console.actions == []
    # The focus survives the page's own refresh redrawing the motor (every 2 s here)
    acknowledge = page.find_element(By.CSS_SELECTOR, 'li[data-alarm="predictive"] button[data-action="acknowledge"]')
    page.execute_script("arguments[0].focus()", acknowledge)
    with console.lock:
        console.fleet["motor-002"]["failure_probability"] = 0.9
    wait(page, lambda d: "90 %" in d.find_element(By.ID, "motor-facts").text, "the page redraws the new probability")
    assert page.switch_to.active_element.get_attribute("data-key") == "predictive:acknowledge"


def test_the_pages_fit_a_phone_screen(page: WebDriver, console: FakeConsole) -> None:
    page.set_window_size(*PHONE)
    sign_in(page, "operator")
    fits = "return document.documentElement.scrollWidth <= window.innerWidth"
    assert page.execute_script(fits), "the fleet page scrolls sideways on a phone"
    page.find_element(By.CSS_SELECTOR, '#fleet-rows tr[data-motor="motor-002"] a').click()
    chart = visible(page, '#motor-charts figure[data-chart="failure_probability"] canvas')
    assert page.execute_script(fits), "the motor page scrolls sideways on a phone"
    assert chart.size["width"] <= page.execute_script("return window.innerWidth")
    button = visible(page, 'li[data-alarm="predictive"] button[data-action="acknowledge"]')
    assert button.size["height"] >= 40, "buttons are big enough to touch"


def test_the_page_refreshes_on_its_own(page: WebDriver, console: FakeConsole) -> None:
    sign_in(page, "viewer")
    page.find_element(By.CSS_SELECTOR, '#fleet-rows tr[data-motor="motor-001"] a').click()
    assert alarm_state(page, "schedule") == "NORMAL"
    with console.lock:  # the schedule alarm is raised behind the page's back
        alarm = next(a for a in console.fleet["motor-001"]["alarms"] if a["name"] == "schedule")
        alarm["state"] = "ACTIVE"
    wait(page, lambda d: alarm_state(d, "schedule") == "ACTIVE", "the page shows the change without a reload")


def test_signing_out_forgets_the_tokens(page: WebDriver) -> None:
    sign_in(page, "operator")
    visible(page, "#sign-out").click()
    visible(page, "#sign-in")
    assert page.execute_script("return sessionStorage.length") == 0


def test_a_failure_report_carries_the_mode_and_time_chosen(page: WebDriver, console: FakeConsole) -> None:
    sign_in(page, "operator")
    page.find_element(By.CSS_SELECTOR, '#fleet-rows tr[data-motor="motor-001"] a').click()
    visible(page, '#motor-actions button[data-action="report_failure"]').click()
    mode = visible(page, "dialog#confirm select[name=failure_mode]")
    mode.find_element(By.CSS_SELECTOR, 'option[value="cooling_loss"]').click()
    page.find_element(By.ID, "confirm-ok").click()
    wait(page, lambda d: "applied" in d.find_element(By.ID, "action-status").text, "the page says it was applied")
    (report,) = console.actions
    assert report["action"] == "report_failure"
    assert report["failure_mode"] == "cooling_loss"
    assert report["failed_at"].endswith("Z")
    assert "alarm" not in report


def test_an_action_that_no_longer_applies_shows_the_apis_reason(
    page: WebDriver, console: FakeConsole, expected_errors: list[str]
) -> None:
    expected_errors.append(
        "/motors/motor-002/actions - Failed to load resource: the server responded with a status of 409"
    )
    sign_in(page, "operator")
    page.find_element(By.CSS_SELECTOR, '#fleet-rows tr[data-motor="motor-002"] a').click()
    visible(page, 'li[data-alarm="predictive"] button[data-action="acknowledge"]').click()
    visible(page, "#confirm-ok")
    with console.lock:  # someone else resets the alarm while the dialog is open
        alarm = next(a for a in console.fleet["motor-002"]["alarms"] if a["name"] == "predictive")
        alarm["state"] = "NORMAL"
    page.find_element(By.ID, "confirm-ok").click()
    notice = visible(page, "#notice")
    assert "acknowledge does not apply to a NORMAL alarm" in notice.text
    wait(page, lambda d: alarm_state(d, "predictive") == "NORMAL", "the page shows the alarm as it now is")


def test_an_unknown_motor_leads_back_to_the_fleet_with_the_apis_reason(
    page: WebDriver, console: FakeConsole, expected_errors: list[str]
) -> None:
    expected_errors.append("/motors/motor-999 - Failed to load resource: the server responded with a status of 404")
    expected_errors.append(
        "/motors/motor-999/history?hours=6 - Failed to load resource: the server responded with a status of 404"
    )
    sign_in(page, "viewer")
    page.get(console.url + "#/motors/motor-999")
    assert "no motor 'motor-999'" in visible(page, "#notice").text
    visible(page, '#fleet-rows tr[data-motor="motor-002"]')
    assert page.current_url.endswith("#/")
