"""A page whose lanes are full waits for their room before its commit, so a backlog
streams through the hand-off (from memory) instead of through the outbox's claims; the
wait never holds up a page that could start something, nor lasts while a lane is stuck."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest

from notifier.delivery import backpressure
from notifier.delivery.breaker import BreakerState
from notifier.delivery.lanes import PER_WEBHOOK_BACKLOG, WebhookLane, lane_capacity
from notifier.delivery.sender import Sender
from notifier.runtime.hooks import ServiceHooks
from notifier.runtime.service import Service
from notifier.store.sqlite import SQLiteStore
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import Outcomes
from tests.tailers import tailer_for
from tests.test_handoff import claim_spy, claimants, hook, page, until

_made_up = itertools.count()


def fill(lane: WebhookLane) -> None:
    """Hold as many (made-up) deliveries as the lane's capacity."""
    while len(lane.held) < lane.capacity:
        lane.held.add(f"held{next(_made_up)}")


@pytest.fixture
async def sender(make_config) -> AsyncIterator[Sender]:
    """A sender of the test config's webhooks (crm, mod) on a real SQLite store, its crm
    lane full; shut down after the test."""
    config = make_config(rooms=["r1"])
    async with SQLiteStore(config.state) as store:
        sender = Sender(config.webhooks, store)
        fill(sender._lanes["crm"])
        try:
            yield sender
        finally:
            await sender.shutdown(0)


def leave(lane: WebhookLane, count: int) -> None:
    """``count`` held deliveries leave the lane, as their outcomes would make them."""
    for _ in range(count):
        lane.held.pop()
        lane.left()


def test_a_lane_holds_two_pages() -> None:
    """Room for the page being committed while the one before it is delivered; never
    less than the fixed floor."""
    assert lane_capacity(1000) == 2000
    assert lane_capacity(50) == PER_WEBHOOK_BACKLOG


async def test_a_backlog_larger_than_the_lane_streams_through_the_hand_off(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three lanes' worth of messages waiting at the start: the tailer reads no faster
    than the lane drains, so every delivery is handed off and none is claimed."""
    monkeypatch.setattr(backpressure, "STALL", 30.0)  # this test is not about stalls
    monkeypatch.setattr(backpressure, "MAX_WAIT", 60.0)
    emulator.add_room(key="r1")
    count = 3 * PER_WEBHOOK_BACKLOG
    for n in range(count):
        emulator.post("r1", f"refund {n}")
    config = make_config(rooms=["r1"])
    assert lane_capacity(config.roomlio.page_size) == PER_WEBHOOK_BACKLOG
    outcomes = Outcomes()
    store = claim_spy(SQLiteStore)(config.state, instance="i1", exclusive=True)
    service = Service(config, instance="i1", store=store,
                      hooks=ServiceHooks(on_outcome=outcomes))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await outcomes.wait_for(lambda o: len(o.items) == count, timeout=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert all(o.ok for o in outcomes.items)
    assert store.claimed == []
    assert len(receiver.unique_ids()) == count
    assert claimants(config.state) == {}


@pytest.mark.parametrize("case", ["ordered", "grouped", "breaker open", "disabled",
                                  "unknown webhook", "congested"])
async def test_a_page_does_not_wait_for_a_lane_that_takes_no_hand_off(
        receiver: WebhookReceiver, make_config, case: str) -> None:
    """A full lane that could not take the page anyway is not waited for: its deliveries
    wait in the outbox, as they always did."""
    settings = {"ordered": {"ordered": True},
                "grouped": {"format": "slack", "group_wait": "2s"}}
    config = make_config(rooms=["r1"], webhooks=hook(receiver, "mod",
                                                     **settings.get(case, {})))
    async with SQLiteStore(config.state) as store:
        sender = Sender(config.webhooks, store)
        try:
            lane = sender._lanes["mod"]
            fill(lane)
            name = "mod"
            if case == "breaker open":
                sender.health["mod"].breaker.restore(BreakerState.OPEN, time.time())
            elif case == "disabled":
                await sender.health["mod"].disable("test")
            elif case == "unknown webhook":
                name = "gone"
            elif case == "congested":
                lane.congested_until = asyncio.get_running_loop().time() + 60
            assert sender.room_for(page(range(3), name)) is None
        finally:
            await sender.shutdown(0)


async def test_a_page_waits_only_when_none_of_its_lanes_has_room_for_it(
        sender: Sender) -> None:
    """``crm`` full: a page for crm alone waits; one that also feeds ``mod``, which has
    room, goes at once (its crm deliveries to the outbox), so a full lane never holds up
    another webhook's deliveries."""
    assert sender.room_for(page(range(3), "crm", "mod")) is None
    waiting = sender.room_for(page(range(3), "crm"))
    assert waiting is not None
    await cancelled(waiting)


async def cancelled(waiting: Awaitable[None]) -> None:
    """Start ``waiting`` and cancel it (a test's page that must not wait to its end)."""
    task = asyncio.ensure_future(waiting)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_waiting_page_goes_as_soon_as_its_lane_has_room_for_it(
        sender: Sender, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait ends when deliveries leaving the lane make room for the page's share, not
    before, and it is woken by them (no polling): the lane forgets the waiter."""
    monkeypatch.setattr(backpressure, "STALL", 60.0)  # only the wake-up can end it in time
    lane = sender._lanes["crm"]
    waiting = sender.room_for(page(range(10), "crm"))
    assert waiting is not None
    task = asyncio.ensure_future(waiting)
    await until(lambda: bool(lane.waiters))
    leave(lane, 9)
    assert lane.waiters and not task.done()
    leave(lane, 1)
    assert not lane.waiters
    await asyncio.wait_for(task, 5)
    assert lane.congested_until == 0.0


async def test_a_lane_that_stops_draining_stops_holding_pages_up(
        sender: Sender, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """No delivery leaves the full lane for ``STALL``: the page stops waiting, and for
    ``CONGESTED_FOR`` no page waits for that lane at all (one stalled wait, not one a page)."""
    monkeypatch.setattr(backpressure, "STALL", 0.2)
    lane = sender._lanes["crm"]
    caplog.set_level(logging.DEBUG, logger="notifier.delivery")
    waiting = sender.room_for(page(range(3), "crm"))
    assert waiting is not None
    await asyncio.wait_for(waiting, 5)
    now = asyncio.get_running_loop().time()
    assert lane.congested_until > now + backpressure.CONGESTED_FOR - 5
    assert sender.room_for(page(range(3), "crm", room="r2")) is None
    assert not lane.waiters
    assert ["does not drain fast enough" in r.getMessage()
            for r in caplog.records] == [True]


async def test_a_lane_that_drains_slowly_holds_a_page_up_at_most_max_wait(
        sender: Sender, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliveries keep leaving the lane, never enough for the page: the page waits past
    ``STALL`` (the lane is moving) but no longer than ``MAX_WAIT``."""
    monkeypatch.setattr(backpressure, "STALL", 0.2)
    monkeypatch.setattr(backpressure, "MAX_WAIT", 0.8)
    lane = sender._lanes["crm"]

    async def trickle() -> None:
        while True:  # one leaves, another takes its place: moving, never any room
            leave(lane, 1)
            fill(lane)
            await asyncio.sleep(0.05)

    trickling = asyncio.create_task(trickle())
    try:
        waiting = sender.room_for(page(range(3), "crm"))
        assert waiting is not None
        started = time.monotonic()
        await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - started >= 0.8
        assert lane.congested_until > 0
    finally:
        trickling.cancel()


async def test_a_receiver_that_hangs_does_not_stop_its_rooms_tail(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every POST to crm hangs: the lane fills, one page waits out a stall, and the tail
    goes on to the room's end, what the lane cannot hold waiting in the outbox."""
    monkeypatch.setattr(backpressure, "STALL", 0.3)
    receiver.inject(Fault.delay(30), path="/crm", times=10_000)
    emulator.add_room(key="r1")
    count = PER_WEBHOOK_BACKLOG + 200
    for n in range(count):
        emulator.post("r1", f"refund {n}")
    config = make_config(rooms=["r1"], delivery={"timeout": "30s"})
    async with SQLiteStore(config.state, instance="i1") as store, \
            aiohttp.ClientSession() as session:
        sender = Sender(config.webhooks, store)
        tailer = tailer_for(config, store, session, sender)
        try:
            read = await asyncio.wait_for(poll_to_the_end(tailer), 20)
            assert read == count
            rows = claimants(config.state)
            assert len(rows) == count
            assert list(rows.values()).count(None) >= count - PER_WEBHOOK_BACKLOG
        finally:
            await sender.shutdown(0)


async def poll_to_the_end(tailer: Any) -> int:
    """Messages read by polls of ``tailer`` until one reads nothing new."""
    read = 0
    while fresh := await tailer.poll():
        read += fresh
    return read


async def test_at_most_max_waiting_pages_wait_at_once(
        sender: Sender, monkeypatch: pytest.MonkeyPatch) -> None:
    """A waiting page holds a poll slot: once ``MAX_WAITING`` pages wait, the next is
    committed at once (its deliveries to the outbox), so other rooms keep slots to poll in;
    when a wait ends, pages may wait again."""
    monkeypatch.setattr(backpressure, "MAX_WAITING", 2)
    lane = sender._lanes["crm"]
    waits = [sender.room_for(page(range(3), "crm", room=f"r{n}")) for n in (1, 2)]
    tasks = [asyncio.ensure_future(w) for w in waits if w is not None]
    assert len(tasks) == 2
    await until(lambda: len(lane.waiters) == 2)
    assert sender.room_for(page(range(3), "crm", room="r3")) is None
    tasks[0].cancel()
    await asyncio.gather(tasks[0], return_exceptions=True)
    again = sender.room_for(page(range(3), "crm", room="r3"))
    assert again is not None
    await cancelled(again)
    tasks[1].cancel()
    await asyncio.gather(tasks[1], return_exceptions=True)

