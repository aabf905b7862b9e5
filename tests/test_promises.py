"""Promises the README makes about pacing, each measured where a user would see it.

``max_in_flight`` caps the requests open at once to one webhook, and a burst reaches it;
deliveries waiting for a retry hold no slot; Roomlio's ``Retry-After`` delays the next
RoomHistory poll of that room by what it says, and not much more.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from notifier.config import Config
from notifier.delivery.formats import load_config
from notifier.testing import Fault, RoomlioEmulator
from notifier.testing._server import Changes, LocalServer
from tests.conftest import TEST_ENV, config_text, running

RULES = [{"name": "refunds", "keywords": ["refund"], "notify": ["crm"]}]


class CountingReceiver:
    """A webhook endpoint that holds each request open for ``hold`` seconds and counts
    how many are open at once; a body containing ``refuse`` is answered 500 at once."""

    def __init__(self, hold: float, refuse: str = "\0") -> None:
        self.hold, self.refuse = hold, refuse
        self.open = self.peak = 0
        self.accepted: list[str] = []
        self.refused: list[tuple[str, float]] = []
        """(body, loop time) of each request answered 500."""
        self._changes = Changes()
        app = web.Application()
        app.router.add_post("/crm", self._handle)
        self._server = LocalServer(app)
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = (await request.json())["data"]["message"]["body"]
        if self.refuse in body:
            self.refused.append((body, asyncio.get_running_loop().time()))
            self._changes.notify()
            return web.Response(status=500, text="refused on purpose")
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            await asyncio.sleep(self.hold)  # the request stays open: that is the point
        finally:
            self.open -= 1
        self.accepted.append(body)
        self._changes.notify()
        return web.Response(text="ok")

    async def wait_for(self, predicate: Any, timeout: float = 10) -> None:
        await self._changes.wait_for(
            lambda: predicate(self), timeout,
            lambda: f"{len(self.accepted)} accepted, {len(self.refused)} refused, "
                    f"peak {self.peak}")


@pytest.fixture
async def counting() -> AsyncIterator[CountingReceiver]:
    rx = CountingReceiver(hold=0.4, refuse="poison")
    rx.url = await rx._server.start()
    try:
        yield rx
    finally:
        await rx._server.stop()


def _config(tmp_path: Path, emulator: RoomlioEmulator, receiver_url: str,
            **crm: Any) -> Config:
    hook = {"url": f"{receiver_url}/crm", "secret": "${TEST_SECRET}", **crm}
    path = tmp_path / "rules.yaml"
    path.write_text(config_text(emulator.url, receiver_url, rooms=["r1"], rules=RULES,
                                webhooks={"crm": hook}))
    return load_config(str(path), env={**os.environ, **TEST_ENV})


async def test_a_burst_reaches_max_in_flight_and_never_exceeds_it(
        tmp_path: Path, emulator: RoomlioEmulator, counting: CountingReceiver) -> None:
    """16 matching messages at once to a webhook with max_in_flight 4: the receiver sees
    exactly 4 requests open at the peak, never 5."""
    emulator.add_room(key="r1")
    for i in range(16):
        emulator.post("r1", f"refund {i}")
    config = _config(tmp_path, emulator, counting.url, max_in_flight=4)
    async with running(config):
        await counting.wait_for(lambda rx: len(rx.accepted) == 16, timeout=20)
    assert counting.peak == 4, counting.peak
    assert sorted(counting.accepted) == sorted(f"refund {i}" for i in range(16))


async def test_deliveries_waiting_for_a_retry_hold_no_slot(
        tmp_path: Path, emulator: RoomlioEmulator, counting: CountingReceiver) -> None:
    """With max_in_flight 2 and four deliveries waiting 30s to retry, eight others to the
    same webhook still go out two at a time, long before any retry is due."""
    emulator.add_room(key="r1")
    for i in range(4):
        emulator.post("r1", f"refund poison {i}")
    # no breaker: this test is about slots, and four failures must not pause the webhook
    config = _config(tmp_path, emulator, counting.url, max_in_flight=2,
                     retry_schedule=["30s"], breaker_window=0)
    async with running(config):
        await counting.wait_for(lambda rx: len(rx.refused) == 4)
        for i in range(8):
            emulator.post("r1", f"refund ok {i}")
        await counting.wait_for(lambda rx: len(rx.accepted) == 8, timeout=15)
        first_failure = counting.refused[0][1]
        finished = asyncio.get_running_loop().time()
    assert counting.peak == 2, counting.peak
    assert len(counting.refused) == 4, "a retry came early: the waits were not 30s"
    assert finished - first_failure < 30


async def test_roomlio_retry_after_delays_the_next_poll_of_that_room(
        tmp_path: Path, emulator: RoomlioEmulator, counting: CountingReceiver) -> None:
    """A 429 with Retry-After: 2 on RoomHistory: the next request for that room comes
    2s later (not sooner, and not much later), and its messages then arrive."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    emulator.inject(Fault.status(429, retry_after=2), room="r1")
    config = _config(tmp_path, emulator, counting.url)
    async with running(config):
        await counting.wait_for(lambda rx: len(rx.accepted) == 1, timeout=15)
    polls = [r for r in emulator.requests if r.room == "r1"]
    limited = next(i for i, r in enumerate(polls) if r.fault == "status")
    assert polls[limited].status == 429
    gap = polls[limited + 1].time - polls[limited].time
    assert 2.0 - 0.05 <= gap <= 2.0 + 1.0, gap
