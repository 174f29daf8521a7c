"""The console as the local stack serves it, in a real browser, while motors have run through the pipeline.

The local stack (the template's functions, moto, the broker, the model) with its console server: the page
from web/, the API through ConsoleFunction's own handler behind the local JWT verifier, the local sign-in.
Two motors run about 33 simulated hours with a 10-hour service interval, so each has an ACTIVE schedule
alarm. An operator signs in through the page, sees the fleet, opens a motor with an active alarm,
acknowledges it (confirming first) and sees its state change, in the page and through the API; a viewer
sees the same pages without a single action button.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from local.options import StackOptions
from local.simulation import simulate_through
from local.stack import LocalStack
from tests.browser.pages import alarm_state, opened, sign_in, visible, wait

pytestmark = pytest.mark.integration

MOTORS = ("motor-001", "motor-002")
FLEET_ARGS = [
    "--motors", "2", "--interval", "0.05", "--speedup", "12000", "--count", "200",
    "--random-failures-per-year", "0", "--no-ui", "--progress-every", "0", "--drain-timeout", "30",
]  # fmt: skip
SIGN_IN_PAGE_ICON = "favicon.ico - Failed to load resource"
"""The local sign-in page has no icon, so Chromium asks for /favicon.ico there: not the console's page."""
STACK_WAIT_S = 30.0
"""The API runs the function in the stack's own execution environment: slower than the fake."""


@dataclass(frozen=True)
class Console:
    url: str
    tokens: dict[str, Any]

    def api(self, path: str, role: str = "viewer") -> Any:
        """GET an API path with a local user's token (not through the page)."""
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            self.url + path, headers={"Authorization": f"Bearer {self.tokens[role]['access_token']}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return json.load(answer)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Iterator[Console]:
    """The local stack with its console, after a fleet run that left every motor's schedule alarm ACTIVE."""
    state_dir = tmp_path_factory.mktemp("local-stack")
    options = StackOptions(
        state_dir=state_dir,
        model=default_model,
        broker="builtin",
        detector_config={"schedule": {"service_interval_h": 10}},
        devices=MOTORS,
        retry_delays_s=(0.2, 0.4),
        log=lambda line: print(line, flush=True),
    )
    with LocalStack(options) as stack:
        report = simulate_through(stack, FLEET_ARGS)
        assert report is not None, "the fleet could not connect to the local broker"
        tokens_path = Path(state_dir) / "console" / "tokens.json"
        assert tokens_path.is_file(), "the local stack wrote no console tokens (docs/console.md)"
        tokens = json.loads(tokens_path.read_text())
        yield Console(tokens["console_url"], tokens)


@pytest.fixture
def page(browser: Chrome, console: Console) -> Iterator[Chrome]:
    with opened(browser, console.url, [SIGN_IN_PAGE_ICON]) as driver:
        yield driver


def test_an_operator_acknowledges_an_active_alarm_and_sees_its_state_change(page: WebDriver, console: Console) -> None:
    # Given the operator signed in: the fleet, most at risk first
    sign_in(page, "operator")
    assert "operator" in visible(page, "#who").text
    rows = page.find_elements(By.CSS_SELECTOR, "#fleet-rows tr[data-motor]")
    assert sorted(row.get_attribute("data-motor") for row in rows) == sorted(MOTORS)
    assert rows[0].get_attribute("data-worst") == "ACTIVE"
    motor_id = str(rows[0].get_attribute("data-motor"))

    # When they open the motor and acknowledge its ACTIVE schedule alarm, confirming
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    assert alarm_state(page, "schedule") == "ACTIVE"
    visible(page, '#motor-charts figure[data-chart="failure_probability"] canvas')
    visible(page, 'li[data-alarm="schedule"] button[data-action="acknowledge"]').click()
    assert f"Acknowledge the schedule alarm of {motor_id}?" in visible(page, "dialog#confirm").text
    page.find_element(By.ID, "confirm-ok").click()

    # Then the page shows it ACKNOWLEDGED, the API says so too, and the transition names the operator
    wait(page, lambda d: alarm_state(d, "schedule") == "ACKNOWLEDGED", "the alarm shows ACKNOWLEDGED", STACK_WAIT_S)
    assert console.api(f"motors/{motor_id}")["alarm_states"]["schedule"] == "ACKNOWLEDGED"
    operator = console.tokens["operator"]["username"]
    wait(page, lambda d: operator in d.find_element(By.ID, "transitions-rows").text, "the transition", STACK_WAIT_S)


def test_a_viewer_sees_the_fleet_and_a_motor_without_any_action_button(page: WebDriver, console: Console) -> None:
    sign_in(page, "viewer")
    assert "viewer" in visible(page, "#who").text
    page.find_element(By.CSS_SELECTOR, "#fleet-rows tr[data-motor] a").click()
    visible(page, "li.alarm[data-alarm]")
    visible(page, '#motor-charts figure[data-chart="failure_probability"]')
    assert page.find_elements(By.CSS_SELECTOR, "#view-motor button[data-action]") == []
