"""The web console and /docs in a real browser: Debian's Chromium (headless) driven by Selenium
through its chromedriver, against `dendrite serve` (a real API process and worker).

Without Chromium these tests skip on a laptop and fail under CI=true. Each page a test visits is
saved as a screenshot under tests/output/browser/ (a CI artifact): look at them.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import DENDRITE, Service, free_port, service_env

CHROMIUM = os.environ.get("DENDRITE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DENDRITE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).parents[1] / "output" / "browser"
WIDTH = 1400


def _require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        message = f"the browser tests need Chromium and chromedriver; missing: {missing}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (apt-get install chromium chromium-driver)")
        pytest.skip(message)


class Console(Service):
    """`dendrite serve` with keys made as an operator makes them."""

    def new_key(self, owner: str, admin: bool = False) -> str:
        created = subprocess.run(
            [*DENDRITE, "keys", "create", owner, *(["--admin"] if admin else [])],
            env=self.env,
            check=True,
            capture_output=True,
        )
        return created.stdout.decode().strip().splitlines()[-1]


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    _require_chromium()
    root = tmp_path_factory.mktemp("console")
    port = free_port()
    env = service_env(DENDRITE_DATA_DIR=str(root / "data"), DENDRITE_EMBEDDED_CONCURRENCY="2")
    server = Console(f"http://127.0.0.1:{port}", env, root)
    server.start("serve", "serve", "--port", str(port))
    yield from server.serve()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


def new_browser() -> WebDriver:
    _require_chromium()
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # containers without user namespaces
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},1000",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",  # no update or safe-browsing calls of its own
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        return webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    except WebDriverException as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Chromium did not start: {error.msg}")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = new_browser()
    try:
        yield driver
    finally:
        driver.quit()


def shoot(driver: WebDriver, name: str) -> Path:
    """A screenshot of the whole page (the window grown to its height) as tests/output/browser/
    <name>.png."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(max(int(height) + 140, 700), 4000))
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, 1000)
    return path


def wait(driver: WebDriver, seconds: float = 30) -> WebDriverWait[WebDriver]:
    """Wait for a condition; an element that goes with a page being left is asked again."""
    return WebDriverWait(
        driver, seconds, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )


def sign_in(driver: WebDriver, base_url: str, key: str) -> None:
    driver.get(f"{base_url}/ui/sign-in")
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#sign-in button").click()
    wait(driver).until(expected_conditions.url_contains("/ui/jobs"))


def console_errors(driver: WebDriver) -> list[str]:
    """What the page's console logged as errors (a CSP refusal, a script error)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the browser requested since the log was last read (Chrome's performance log)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def foreign(urls: list[str], base_url: str) -> list[str]:
    """The URLs that leave this server (data: and blob: stay in the page)."""
    return [u for u in urls if not (u.startswith(base_url) or re.match(r"(data|blob|about):", u))]
