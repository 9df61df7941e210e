"""/docs in Chromium: Swagger UI renders every operation from files dendrite serves itself, and
the page requests nothing from another host."""

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.conftest import Console, foreign, requested_urls, shoot, wait

pytestmark = pytest.mark.browser


def test_docs_render_operations_without_another_host(
    console_server: Console, browser: WebDriver, screenshots: Any
) -> None:
    base = console_server.base_url
    browser.get(f"{base}/docs")
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 20)
    summaries = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary"))
    assert "/v1/jobs" in summaries and "/v1/keys" in summaries
    shoot(browser, "17-docs")
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources, "the page loaded no script or style"
    assert not foreign(resources, base), resources
    assert not foreign(requested_urls(browser), base)
