"""The status page in a real headless Chromium: it renders the state and its replay works.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Set
``NOTIFIER_SCREENSHOT=docs/status-page.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.testing import Fault
from tests import realparts
from tests.conftest import Outcomes
from tests.opsutil import ADMIN_TOKEN, ops_config, serving

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow]


@pytest.fixture
def browser() -> Iterator[Any]:
    realparts.require("chromium", CHROMEDRIVER is not None and CHROMIUM is not None)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Selenium blocks; the service under test runs in this event loop."""
    return await asyncio.to_thread(fn, *args)


def _wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 15) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


async def test_status_page_shows_rooms_webhooks_and_replays_a_dead_letter(
        emulator, receiver, tmp_path, browser):
    """The page lists room, webhooks, deliveries and a dead letter; its Replay button resends."""
    from selenium.webdriver.common.by import By

    emulator.add_room(key="support-42")
    emulator.add_room(key="sales")
    emulator.post("support-42", "URGENT: refund please")
    emulator.post("sales", "cancel my account")
    receiver.set_default_status("/mod", 422)
    receiver.inject(Fault.status(503), path="/crm")
    outcomes = Outcomes()
    config = ops_config(tmp_path, emulator, receiver, rooms=["support-42", "sales"],
                        server={"admin_token": ADMIN_TOKEN})
    async with serving(config, outcomes) as s:
        await outcomes.wait_for(lambda o: len(o.items) == 3)
        dead_id = outcomes.failed[0].delivery.id
        await _in_thread(browser.get, s.url + "/")
        await _in_thread(_wait, browser, lambda d: dead_id in _text(d, "#dead"))
        assert "support-42" in _text(browser, "#rooms") and "sales" in _text(browser, "#rooms")
        webhooks = _text(browser, "#webhooks")
        assert "crm" in webhooks and "66.7%" in webhooks and "closed" in webhooks
        assert "503" in _text(browser, "#recent")
        # the Content-Security-Policy lets the page's own inline style and script run
        background = await _in_thread(browser.execute_script,
                                      "return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(247, 248, 250)"
        shot = os.environ.get("NOTIFIER_SCREENSHOT")
        await _in_thread(browser.save_screenshot, shot or str(tmp_path / "status.png"))

        # without the token the click is refused and nothing is sent
        button = browser.find_element(By.CSS_SELECTOR, f"button.replay[data-id='{dead_id}']")
        await _in_thread(button.click)
        await _in_thread(_wait, browser, lambda d: "refused" in _text(d, "#message"))
        assert not any(r.path == "/mod" for r in receiver.received)

        receiver.set_default_status("/mod", None)
        box = browser.find_element(By.ID, "token")
        await _in_thread(box.send_keys, ADMIN_TOKEN)
        button = browser.find_element(By.CSS_SELECTOR, f"button.replay[data-id='{dead_id}']")
        await _in_thread(button.click)
        await _in_thread(_wait, browser, lambda d: "replayed 1" in _text(d, "#message"))
        await receiver.wait_for(lambda r: any(x.path == "/mod" for x in r.received))
        await _in_thread(browser.refresh)
        await _in_thread(_wait, browser, lambda d: dead_id not in _text(d, "#dead"))
    size = await _in_thread(lambda: Path(shot or tmp_path / "status.png").stat().st_size)
    assert size > 10_000


async def test_status_page_lists_quarantined_messages_as_text(emulator, receiver, tmp_path,
                                                               browser):
    """A quarantined message shows with its room, reason and text; markup in it stays text."""
    emulator.add_room(key="r1")
    bad = {"id": "msg_poison0001", "createdAt": "yesterday",
           "body": "<img src=x onerror=alert(1)>"}
    emulator.inject(Fault.status(200, body={"messages": [bad]}), room="r1")
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"])
    async with serving(config) as s:
        await _in_thread(browser.get, s.url + "/")
        await _in_thread(_wait, browser, lambda d: "msg_poison0001" in _text(d, "#quarantine"))
        shown = await _in_thread(_text, browser, "#quarantine")
        images = await _in_thread(browser.execute_script,
                                  "return document.querySelectorAll('#quarantine img').length")
    assert "r1" in shown and "not an ISO 8601 time" in shown
    assert "<img src=x onerror=alert(1)>" in shown and images == 0


async def test_status_page_shows_the_api_keys_learned_rate_and_refusals(
        emulator, receiver, tmp_path, browser):
    """After Roomlio's 429s the page's Roomlio API section shows the learned rate, the
    refusals among the requests, and refusals a second over the last 10 s."""
    from notifier.polling.throttle import MIN_EVIDENCE

    emulator.add_room(key="r1")
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"],
                        roomlio={"edit_lookback": 0, "max_poll_interval": "100ms"})
    async with serving(config) as s:
        await emulator.wait_requests(MIN_EVIDENCE + 2)
        emulator.inject(Fault.status(429, retry_after=0.2), room="r1")
        await emulator.wait_for(lambda emu: emu.refused == 1)
        await _in_thread(browser.get, s.url + "/")
        await _in_thread(_wait, browser, lambda d: "refused 1 of" in _text(d, "#api-summary"))
        summary = await _in_thread(_text, browser, "#api-summary")
        table = await _in_thread(_text, browser, "#api")
    assert "learned rate: " in summary and "/s" in summary.split("learned rate: ")[1]
    assert "none learned" not in summary and "rate limited now" in summary
    assert "10 s" in table and "1 min" in table and "5 min" in table
