"""Every hostile input of issue 13 at once, against one `notifier run`: the healthy rooms'
events keep arriving within seconds of normal, and the process stays small and alive.

Each input has its own focused test; this one shows they do not add up to an outage:
a Roomlio that sends a createdAt past the calendar, a poisoned message, a looping cursor,
a message from year 9999 and errors that echo the key and forge log lines; a chat user
whose message is a catastrophic regex input; a receiver that answers 256 MB; a template
that would loop for hours.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from pathlib import Path

import pytest

from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command
from tests.test_hostile_delivery import Hostile
from tests.test_hostile_roomlio import message, page
from tests.test_rule_regex import CATASTROPHIC, hostile

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

HEALTHY = ["h1", "h2", "h3"]
#: One room per hostile Roomlio answer, each served for every request to that room.
ROOMLIO = {
    "overflow": Fault.status(200, body=page(message(1, "refund", "9999-12-31T23:59:59-01:00"))),
    "poisoned": Fault.status(200, body=page(message(2, "refund ok"),
                                            message(3, "refund bad", "yesterday"))),
    "looping": Fault.cursor_loop(),
    "noisy": Fault.status(500, body={
        "code": "internal", "message": "x" * 190 + API_KEY + "\n2026-01-01 ERROR forged"}),
}
#: Rooms whose messages are ordinary in shape but hostile in content or destination.
CONTENT = ["regex", "big", "template"]
LOOP_TEMPLATE = ("{% for a in message.body %}{% for b in message.body %}"
                 "{% for c in message.body %}{% endfor %}{% endfor %}{% endfor %}")
#: The healthy stream: one message every STEP seconds, rotating over the healthy rooms.
MESSAGES, STEP = 45, 0.2
#: Delivery delay with nothing hostile around, poll_interval 100 ms: about 0.1 to 0.4 s here.
P99_BOUND, RSS_BOUND_MB = 3.0, 300


def _rules() -> list[dict[str, object]]:
    return [
        {"name": "healthy", "rooms": HEALTHY, "keywords": ["refund"], "notify": ["crm"]},
        {"name": "hostile-rooms", "rooms": list(ROOMLIO), "keywords": ["refund"],
         "notify": ["mod"]},
        {"name": "words", "rooms": ["regex"], "regex": [CATASTROPHIC], "notify": ["mod"]},
        {"name": "big", "rooms": ["big"], "keywords": ["refund"], "notify": ["big"]},
        {"name": "template", "rooms": ["template"], "keywords": ["refund"],
         "notify": ["looping"]},
    ]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


async def _stream(emu: RoomlioEmulator) -> dict[str, float]:
    """Post the healthy stream at its pace; each body's posting time."""
    posted: dict[str, float] = {}
    for i in range(MESSAGES):
        body = f"refund healthy {i}"
        emu.post(HEALTHY[i % len(HEALTHY)], body)
        posted[body] = time.monotonic()
        await asyncio.sleep(STEP)  # the pace of the chat, not a wait for a condition
    return posted


def _delays(rx: WebhookReceiver, posted: dict[str, float]) -> list[float]:
    arrived = {}
    for request in rx.received:
        if request.path == "/crm" and request.status == 200:
            arrived.setdefault(request.json["data"]["message"]["body"], request.at)
    return [arrived[body] - at for body, at in posted.items()]


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_healthy_rooms_stay_on_time_under_every_hostile_input_at_once(tmp_path):
    """All of issue 13's remote inputs at once: every healthy event arrives, p99 within a
    few seconds, peak RSS within a few hundred MB, the process alive and clean to stop."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx, \
            Hostile(200, endless=True) as big:
        for room, fault in ROOMLIO.items():
            emu.add_room(key=room)
            emu.inject(fault, room=room, times=1_000_000)
        for room in [*CONTENT, *HEALTHY]:
            emu.add_room(key=room)
        webhooks = {"big": {"url": big.url + "/big"},
                    "looping": {"url": rx.url_for("/mod"), "format": "template",
                                "template": LOOP_TEMPLATE, "content_type": "text/plain"}}
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=[*ROOMLIO, *CONTENT, *HEALTHY],
                                    webhooks=webhooks, rules=_rules()))
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path)), stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, **TEST_ENV})
        try:
            emu.post("h1", "refund warm-up")
            await rx.wait_count(1, timeout=30)  # started and serving
            emu.post("regex", hostile(40))  # years of backtracking for Python's re
            emu.post("big", "refund to the endless receiver")
            emu.post("template", "refund " + "x" * 200)
            posted = await _stream(emu)
            await rx.wait_for(lambda r: sum(x.path == "/crm" and x.status == 200
                                            for x in r.received) >= MESSAGES + 1, timeout=30)
            peak = _peak_rss_mb(proc.pid)
            alive = proc.returncode is None
            hostile_served = {room: sum(r.room == room and r.done for r in emu.requests)
                              for room in ROOMLIO}
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
    delays = _delays(rx, posted)
    log = err.decode()
    print(f"\nall hostile inputs at once: {len(delays)} healthy events, p50 "
          f"{statistics.median(delays):.2f} s, p99 {_p99(delays):.2f} s, max {max(delays):.2f} s;"
          f" peak RSS {peak:.0f} MB; hostile rooms served {hostile_served}; "
          f"endless receiver asked {big.requests}x")
    assert alive and proc.returncode == 0, log[-3000:]
    assert _p99(delays) < P99_BOUND, sorted(delays)[-5:]
    assert peak < RSS_BOUND_MB
    assert all(n >= 3 for n in hostile_served.values()), hostile_served  # they were polled
    assert big.requests >= 1  # the endless answer was really read (and cut off)
    assert API_KEY not in log and not any(line.startswith("2026-01-01 ERROR forged")
                                          for line in log.splitlines())
