"""The README's screenshots of the console (docs/img/console-fleet.png, console-motor.png), taken in headless Chromium.

Against a running console, signed in with the local stack's operator token:

    .venv/bin/python -m tests.browser.screenshots --url http://127.0.0.1:PORT/ \
        --tokens .local-stack/console/tokens.json --motor motor-002

or `--local-stack`: start the local stack, run four motors (two wearing out) through it for about 67
simulated hours, and take the screenshots of its console; or, with neither, against the browser tests'
fake of the console API (tests/browser/fake_console.py).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser.fake_console import FakeConsole

ROOT = Path(__file__).resolve().parents[2]
SIZE = (1200, 900)
PALETTE = 64
WAIT_S = 30.0


def _browser() -> webdriver.Chrome:
    executable, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if executable is None or driver is None:
        sys.exit("screenshots: Chromium is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = executable
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
                     f"--window-size={SIZE[0]},{SIZE[1]}", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def _sign_in(browser: webdriver.Chrome, url: str, token: str) -> None:
    """Puts the operator's token where the page keeps it after a sign-in."""
    browser.get(url)
    expires_at = int((time.time() + 3600) * 1000)
    tokens = json.dumps({"access_token": token, "expires_at": expires_at})
    browser.execute_script("sessionStorage.setItem('console.tokens', arguments[0])", tokens)


def _shoot(browser: webdriver.Chrome, url: str, ready_css: str, path: Path, height: int, hours: str = "") -> None:
    """The page at `url` once `ready_css` shows, `height` pixels of it, as a small palette PNG."""
    browser.set_window_size(SIZE[0], height)
    browser.get(url)  # a change of the hash only: the page routes to it without reloading
    if hours:  # the history's window, as the user picks it
        option = f'#history-hours option[value="{hours}"]'
        WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.CSS_SELECTOR, option).is_displayed())
        browser.find_element(By.CSS_SELECTOR, option).click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready_css), ready_css)
    browser.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    time.sleep(1.0)  # the charts draw on the next animation frame
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    image.quantize(colors=PALETTE).save(path, optimize=True)  # docs/img stays small (tests/unit/test_docs.py)
    print(f"screenshots: wrote {path} ({path.stat().st_size // 1000} kB)")


def take(url: str, token: str, motor: str, out: Path, hours: str) -> None:
    browser = _browser()
    try:
        _sign_in(browser, url, token)
        _shoot(browser, url + "#/", "#fleet-rows tr[data-motor]", out / "console-fleet.png", 700)
        motor_page = f"{url}#/motors/{motor}"
        _shoot(browser, motor_page, "#motor-charts canvas", out / "console-motor.png", 1450, hours)
    finally:
        browser.quit()


FLEET_ARGS = [
    "--motors", "4", "--interval", "0.05", "--speedup", "12000", "--count", "400",
    "--fail", "motor-002:bearing_wear:52h", "--fail", "motor-004:cooling_loss:56h",
    "--random-failures-per-year", "0", "--no-ui", "--progress-every", "0", "--drain-timeout", "30",
]  # fmt: skip
"""The end-to-end test's fleet (tests/integration/test_local_stack.py), failing late enough for the 24 h charts."""


def take_local_stack(motor: str, out: Path, hours: str) -> None:
    """The screenshots of the local stack's own console, after a fleet run through it."""
    from local.artifact import DEFAULT_ARTIFACT, ensure_model
    from local.options import StackOptions
    from local.simulation import simulate_through
    from local.stack import LocalStack

    model = ensure_model(DEFAULT_ARTIFACT, log=lambda line: print(f"train: {line}", flush=True))
    with tempfile.TemporaryDirectory(prefix="console-screenshots-") as state_dir:
        options = StackOptions(state_dir=Path(state_dir), model=model, broker="builtin",
                               detector_config={"schedule": {"service_interval_h": 40}},
                               devices=tuple(f"motor-00{n}" for n in range(1, 5)))  # fmt: skip
        with LocalStack(options) as stack:
            if simulate_through(stack, FLEET_ARGS) is None:
                sys.exit("screenshots: the fleet could not connect to the local broker")
            tokens = json.loads((Path(state_dir) / "console" / "tokens.json").read_text())
            take(tokens["console_url"], tokens["operator"]["access_token"], motor, out, hours)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the console's address (default: start the tests' fake console)")
    parser.add_argument("--tokens", type=Path, help="the local stack's tokens.json (with --url)")
    parser.add_argument("--local-stack", action="store_true", help="start the local stack and run a fleet first")
    parser.add_argument("--motor", default="motor-002", help="the motor page to take")
    parser.add_argument("--hours", choices=("1", "6", "24"), default="24", help="the motor page's history window")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    if args.local_stack:
        take_local_stack(args.motor, args.out, args.hours)
        return
    if args.url:
        if args.tokens is None:
            parser.error("--url needs --tokens")
        token = json.loads(args.tokens.read_text())["operator"]["access_token"]
        take(args.url if args.url.endswith("/") else args.url + "/", token, args.motor, args.out, args.hours)
        return
    with FakeConsole() as console:
        take(console.url, console.token("operator"), args.motor, args.out, args.hours)


if __name__ == "__main__":
    main()
