"""What the browser tests do on the console's pages: open it signed out, sign in, wait, read alarm states."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser.conftest import DESKTOP

WAIT_S = 15.0


@contextmanager
def opened(browser: Chrome, url: str, expected_errors: list[str]) -> Iterator[Chrome]:
    """The console at `url`, signed out, at desktop size; afterwards the browser's log must hold no error
    (a CSP refusal, a failed request, a script error) but those whose text is in `expected_errors`."""
    browser.set_window_size(*DESKTOP)
    browser.get(url)
    browser.execute_script("sessionStorage.clear()")
    browser.get_log("browser")  # drop what earlier tests left
    browser.get(url)
    yield browser
    errors = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in expected_errors)
    ]
    assert not errors, f"the browser logged errors (a CSP refusal, a failed request, a script error): {errors}"


def wait(driver: WebDriver, condition: Any, message: str, timeout_s: float = WAIT_S) -> Any:
    """Until `condition` holds; an element redrawn by the page's refresh meanwhile is looked up again."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout_s, poll_frequency=0.2, ignored_exceptions=ignored).until(condition, message)


def visible(driver: WebDriver, css: str) -> WebElement:
    """The first displayed element `css` selects, once there is one."""

    def shown(d: WebDriver) -> WebElement | None:
        return next((e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None)

    element: WebElement = wait(driver, shown, css)
    return element


def sign_in(driver: WebDriver, user: str) -> None:
    """Through the page's sign-in button and the sign-in page's button for `user` (authorization code + PKCE)."""
    visible(driver, "#sign-in").click()
    visible(driver, f'button[name="user"][value="{user}"]').click()
    visible(driver, "#fleet-rows tr[data-motor]")


def alarm_state(driver: WebDriver, alarm: str) -> str:
    """The state the motor page shows for `alarm`."""
    css = f'li.alarm[data-alarm="{alarm}"]'
    return str(wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, css).get_attribute("data-state"), css))
