"""The status page in a real headless Chromium: it renders the state and its replay works.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Set
``NOTIFIER_SCREENSHOT=docs/status-page.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.testing import Fault
from tests import realparts
from tests.conftest import Outcomes
from tests.opsutil import ADMIN_TOKEN, ops_config, serving, until

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


#: In the page: read /api/status, render it as the page does, and read back what the charts
#: drew, in one turn of the page's event loop (its 5-second refresh cannot come between).
_DRAWN = """
const done = arguments[arguments.length - 1];
fetch("api/status", {cache: "no-store"}).then((r) => r.json()).then((s) => {
  render(s);
  const marks = (css) => [...document.querySelectorAll(css)].map((e) => ({
    chart: e.closest("svg").dataset.chart, name: e.closest("svg").dataset.name,
    series: e.dataset.series, minute: Number(e.dataset.minute), value: Number(e.dataset.value),
    height: e.tagName === "rect" ? Number(e.getAttribute("height")) : null}));
  const paths = [...document.querySelectorAll("svg.chart path.line")].map((p) => ({
    chart: p.closest("svg").dataset.chart, name: p.closest("svg").dataset.name,
    series: p.dataset.series, points: (p.getAttribute("d").match(/[ML]/g) || []).length}));
  done({history: s.history, bars: marks("svg.chart rect.bar"), dots: marks("svg.chart circle.dot"),
        paths: paths});
});
"""

#: The same page given a p95 series with gaps: the pen commands of crm's latency line.
_GAPPY = """
const done = arguments[arguments.length - 1];
fetch("api/status", {cache: "no-store"}).then((r) => r.json()).then((s) => {
  const p95 = s.history.webhooks.find((w) => w.webhook === "crm").p95.fill(null);
  p95.splice(0, 6, 0.1, 0.2, null, 0.3, 0.4, 0.5);
  render(s);
  const path = document.querySelector("svg[data-chart='latency'][data-name='crm'] path.line");
  done((path.getAttribute("d").match(/[ML]/g) || []).join(" "));
});
"""


def _drawn(marks: list[dict[str, Any]], chart: str, name: str, series: str) -> dict[int, float]:
    """minute → value of one chart's marks of one series."""
    return {m["minute"]: m["value"] for m in marks
            if (m["chart"], m["name"], m["series"]) == (chart, name, series)}


def _nonzero(values: list[float | None]) -> dict[int, float]:
    return {i: v for i, v in enumerate(values) if v}


async def test_status_page_charts_draw_the_last_hour_of_a_run_with_retries(
        emulator, receiver, tmp_path, browser):
    """After deliveries with a retry, a dead letter and a failed poll, the page's SVG charts
    draw one bar or point for each minute /api/status has data for, with its value, and
    nothing else; the numbers are the run's."""
    from selenium.webdriver.common.by import By

    emulator.add_room(key="support-42")
    emulator.add_room(key="sales")
    emulator.post("support-42", "URGENT: refund please")
    emulator.post("sales", "cancel my account")
    emulator.inject(Fault.status(400), room="sales")
    receiver.set_default_status("/mod", 422)
    receiver.inject(Fault.status(503), path="/crm")
    outcomes = Outcomes()
    config = ops_config(tmp_path, emulator, receiver, rooms=["support-42", "sales"])
    async with serving(config, outcomes) as s:
        await outcomes.wait_for(lambda o: len(o.items) == 3)
        await until(lambda: sum(s.ops.history.snapshot()["all_rooms"]["errors"]) == 1)
        await _in_thread(browser.get, s.url + "/")
        # the page's own refresh draws them (the CSP lets the charts' script run)
        await _in_thread(_wait, browser, lambda d: d.find_elements(
            By.CSS_SELECTOR, "svg[data-chart='deliveries'][data-name='crm'] rect.bar"))
        got = await _in_thread(browser.execute_async_script, _DRAWN)
        charts = await _in_thread(browser.find_element, By.ID, "charts")
        # below the tables: an element screenshot shows only what is in the window
        await _in_thread(browser.execute_script, "arguments[0].scrollIntoView()", charts)
        shot = os.environ.get("NOTIFIER_CHARTS_SCREENSHOT") or str(tmp_path / "charts.png")
        await _in_thread(charts.screenshot, shot)
        note = await _in_thread(_text, browser, "#charts")
        # a minute without a point breaks the line: two runs of points, two pen-downs
        gappy = await _in_thread(browser.execute_async_script, _GAPPY)
    history, bars, dots = got["history"], got["bars"], got["dots"]
    hooks = {w["webhook"]: w for w in history["webhooks"]}
    for name in ("crm", "mod"):
        for series in ("delivered", "failed"):
            assert _drawn(bars, "deliveries", name, series) == _nonzero(hooks[name][series])
        assert _drawn(dots, "latency", name, "p95") == {
            i: v for i, v in enumerate(hooks[name]["p95"]) if v is not None}
    # the run's own numbers: crm 2 delivered after one 503, mod one 422 and no delivery
    assert sum(_drawn(bars, "deliveries", "crm", "delivered").values()) == 2
    assert sum(_drawn(bars, "deliveries", "crm", "failed").values()) == 1
    assert sum(_drawn(bars, "deliveries", "mod", "failed").values()) == 1
    assert _drawn(bars, "deliveries", "mod", "delivered") == {}
    assert len(_drawn(dots, "latency", "crm", "p95")) >= 1
    assert all(bar["height"] > 0 for bar in bars)
    rooms = {r["room"]: r for r in history["rooms"]}
    assert _drawn(bars, "polls", "sales", "errors") == _nonzero(rooms["sales"]["errors"])
    assert sum(_drawn(bars, "polls", "sales", "errors").values()) == 1
    polled = {i: p - e for i, (p, e) in enumerate(zip(history["all_rooms"]["polls"],
                                                      history["all_rooms"]["errors"],
                                                      strict=True)) if p - e}
    assert _drawn(bars, "all-rooms", "", "ok") == polled
    assert _drawn(dots, "store", "", "dead_letters") == {
        i: v for i, v in enumerate(history["store"]["dead_letters"]) if v is not None}
    # a line through every point it has: as many pen moves as points
    for path in got["paths"]:
        drawn = _drawn(dots, path["chart"], path["name"], path["series"])
        assert path["points"] == len(drawn) > 0
    assert "a restart clears it" in note
    assert gappy == "M L M L L"
    png = await _in_thread(Path(shot).read_bytes)
    width, height = struct.unpack(">II", png[16:24])  # the PNG's IHDR
    assert width > 600 and height > 400  # every chart, not the window's last strip of them


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
