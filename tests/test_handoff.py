"""The tailer hands a committed page's deliveries to this process's sender: they are added
to the outbox already claimed and start from memory, with no claim query. Whatever the
sender cannot start at once (ordered, grouped, an open breaker, a disabled webhook, a
full lane, a webhook it does not have) stays on the outbox path; a reload, a shutdown or
a crash between commit and POST loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifier.delivery.breaker import BreakerState
from notifier.delivery.sender import PER_WEBHOOK_BACKLOG, AttemptReport, Sender
from notifier.errors import StoreError
from notifier.events import Delivery, Event
from notifier.runtime.handoff import SenderHandOff
from notifier.runtime.hooks import ServiceHooks
from notifier.runtime.service import Service
from notifier.store import open_store
from notifier.store.postgres import PostgresStore
from notifier.store.sqlite import SQLiteStore
from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.conftest import Outcomes
from tests.tailers import tailer_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_pair(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    """Two instances' stores on one state (SQLite: the runner and a non-exclusive opener)."""
    if request.param == "sqlite":
        path = str(tmp_path / "state.db")
        mine: Any = SQLiteStore(path, instance="i1", exclusive=True)
        other: Any = SQLiteStore(path, instance="i2")
    else:
        url = request.getfixturevalue("pg_url")
        mine, other = PostgresStore(url, instance="i1"), PostgresStore(url, instance="i2")
    async with mine, other:
        yield mine, other


def page(numbers: range, *webhooks: str, room: str = "r1") -> list[Delivery]:
    """One delivery per webhook for each numbered message of ``room``."""
    found = []
    for n in numbers:
        message = {"id": f"msg_{room}_{n:020d}", "body": f"refund {n}", "userID": "usr_1",
                   "createdAt": "2026-11-25T10:00:02Z", "editedAt": "0001-01-01T00:00:00Z"}
        event = Event.from_message("message.created", room, message, ("refunds",), time.time())
        found += [Delivery.for_webhook(event, w, ("refunds",)) for w in webhooks]
    return found


def claimants(path: str) -> dict[str, str | None]:
    """Each outbox row's claimed_by, read as another program reads the file."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT id, claimed_by FROM outbox").fetchall())


def claim_spy(backend: type[Any]) -> type[Any]:
    """The real store class ``backend``, noting which deliveries a claim query handed out."""

    class ClaimSpy(backend):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.claimed: list[Delivery] = []

        async def claim_due(self, *args: Any, **kwargs: Any) -> list[Delivery]:
            found = await super().claim_due(*args, **kwargs)
            self.claimed += found
            return found

    return ClaimSpy


def hook(receiver: WebhookReceiver, name: str, **settings: Any) -> dict[str, Any]:
    """A webhook ``name`` on the receiver (signed unless its format sends no signature)."""
    signed = {} if "format" in settings else {"secret": "${TEST_SECRET}"}
    return {name: {"url": f"{receiver.url}/{name}", **signed, **settings}}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_pages_deliveries_reach_the_receiver_without_a_claim_query(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config,
        request: pytest.FixtureRequest, backend: str) -> None:
    """Every delivery of a plain webhook is committed claimed and sent from memory; an
    ordered webhook's still go through claims; the enqueued hook hears of all of them."""
    emulator.add_room(key="r1")
    for n in range(30):
        emulator.post("r1", f"urgent refund {n}")
    state = {"state": request.getfixturevalue("pg_url")} if backend == "postgresql" else {}
    config = make_config(rooms=["r1"], webhooks=hook(receiver, "mod", ordered=True), **state)
    enqueued: list[Delivery] = []
    outcomes = Outcomes()
    store = claim_spy(PostgresStore if state else SQLiteStore)(
        config.state, instance="i1", exclusive=True)
    service = Service(config, instance="i1", store=store, hooks=ServiceHooks(
        on_outcome=outcomes, on_enqueued=enqueued.extend))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await outcomes.wait_for(lambda o: len(o.items) == 60, timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert all(o.ok for o in outcomes.items)
    assert sorted(d.webhook for d in enqueued) == ["crm"] * 30 + ["mod"] * 30
    assert {d.webhook for d in store.claimed} == {"mod"}
    assert len(store.claimed) == 30
    assert len(receiver.unique_ids()) == len(receiver.received) == 60
    async with open_store(config.state) as after:
        assert await after.outbox() == []


@pytest.mark.parametrize("case", ["ordered", "grouped", "breaker open", "disabled",
                                  "unknown webhook", "lane full"])
async def test_the_sender_takes_no_page_it_cannot_start_at_once(
        receiver: WebhookReceiver, make_config, case: str) -> None:
    """reserve() refuses each lane whose deliveries must wait for a claim; ``crm`` beside
    it, with room and a closed breaker, is taken."""
    settings = {"ordered": {"ordered": True}, "grouped": {"format": "slack",
                                                          "group_wait": "2s"}}
    config = make_config(rooms=["r1"], webhooks=hook(receiver, "mod",
                                                     **settings.get(case, {})))
    async with SQLiteStore(config.state) as store:
        sender = Sender(config.webhooks, store)
        try:
            other = "mod"
            if case == "breaker open":
                sender.health["mod"].breaker.restore(BreakerState.OPEN, time.time())
            elif case == "disabled":
                await sender.health["mod"].disable("test")
            elif case == "unknown webhook":
                other = "gone"
            elif case == "lane full":
                sender._lanes["mod"].held.update(f"d{n}" for n in range(PER_WEBHOOK_BACKLOG))
            deliveries = page(range(3), "crm", other)
            reserved = sender.reserve(deliveries)
            assert reserved is not None
            assert set(reserved.lanes) == {"crm"}
            assert reserved.ids == {d.id for d in deliveries if d.webhook == "crm"}
            sender.adopt(reserved, ())
        finally:
            await sender.shutdown(0)


async def test_the_hand_off_wakes_the_claimers_only_for_what_it_did_not_take(
        receiver: WebhookReceiver, make_config) -> None:
    """A page taken whole wakes no claimer (its claim query would find nothing); a page
    with deliveries left in the outbox (an ordered webhook's here) wakes them."""
    config = make_config(rooms=["r1"], webhooks=hook(receiver, "mod", ordered=True))
    pokes: list[None] = []
    async with SQLiteStore(config.state) as store:
        sender = Sender(config.webhooks, store)
        handoff = SenderHandOff(sender, lambda: pokes.append(None))
        try:
            cases = [(("crm",), 0), (("crm", "mod"), 1), (("mod",), 2)]
            for n, (webhooks, woken) in enumerate(cases):
                deliveries = page(range(2), *webhooks, room=f"r{n}")
                reserved = handoff.reserve(deliveries)
                added, _ = await store.commit_page(
                    None, deliveries, (), claimed=reserved.ids if reserved else ())
                handoff.adopt(reserved, added)
                assert len(pokes) == woken, webhooks
        finally:
            await sender.shutdown(0)


async def test_reservations_keep_a_lane_under_its_backlog_cap(
        receiver: WebhookReceiver, make_config) -> None:
    """Pages being committed together count against the cap before they land: the page
    that would take the lane past it waits for a claim instead; a failed commit frees
    the room it held."""
    config = make_config(rooms=["r1"])
    async with SQLiteStore(config.state) as store:
        sender = Sender(config.webhooks, store)
        try:
            half = PER_WEBHOOK_BACKLOG // 2
            first = sender.reserve(page(range(half), "crm"))
            second = sender.reserve(page(range(half), "crm", room="r2"))
            assert first is not None and second is not None
            assert sender.reserve(page(range(1), "crm", room="r3")) is None
            sender.adopt(second, ())  # its commit failed
            assert sender.reserve(page(range(1), "crm", room="r3")) is not None
        finally:
            await sender.shutdown(0)


async def test_a_commit_that_fails_frees_its_reservation_and_loses_nothing(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config) -> None:
    """A tailer's commit refused (the state file's write lock held by another program):
    the poll fails, the lane's reserved room is given back, and the next poll commits the
    page and hands its delivery off."""
    emulator.add_room(key="r1")
    config = make_config(rooms=["r1"])
    async with SQLiteStore(config.state, instance="i1", busy_timeout=0.1) as store, \
            aiohttp.ClientSession() as session:
        outcomes = Outcomes()
        sender = Sender(config.webhooks, store, on_outcome=outcomes)
        tailer = tailer_for(config, store, session, sender)
        try:
            await tailer.poll()  # the room's first state saved, before the lock
            emulator.post("r1", "refund please")
            with sqlite3.connect(config.state, isolation_level=None) as saboteur:
                saboteur.execute("BEGIN IMMEDIATE")
                with pytest.raises(StoreError, match="locked"):
                    await tailer.poll()
                saboteur.execute("ROLLBACK")
            assert sender._lanes["crm"].reserved == 0
            await tailer.poll()
            await outcomes.wait_for(lambda o: len(o.items) == 1)
        finally:
            await sender.shutdown(1)
    assert claimants(config.state) == {}


async def test_a_poll_cancelled_mid_commit_still_hands_its_deliveries_off(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config) -> None:
    """A shutdown cancels a poll while its commit waits for the store's thread: the commit
    still lands with its rows claimed, so the sender takes them (and would give them back
    as it stops) rather than leaving them claimed by nobody until the next start."""
    emulator.add_room(key="r1")
    config = make_config(rooms=["r1"])
    gate = threading.Event()
    async with SQLiteStore(config.state, instance="i1") as store, \
            aiohttp.ClientSession() as session:
        outcomes = Outcomes()
        sender = Sender(config.webhooks, store, on_outcome=outcomes)
        tailer = tailer_for(config, store, session, sender)
        thread: Any = store._thread
        try:
            await tailer.poll()
            emulator.post("r1", "refund please")
            busy = threading.Event()
            thread.call(lambda: busy.set() or gate.wait(10))  # the store's one thread
            await until(busy.is_set)
            poll = asyncio.create_task(tailer.poll())
            await until(lambda: thread.queued() == 1)  # the commit, queued
            poll.cancel()
            gate.set()
            with pytest.raises(asyncio.CancelledError):
                await poll
            await outcomes.wait_for(lambda o: len(o.items) == 1)
        finally:
            gate.set()
            await sender.shutdown(1)
    assert claimants(config.state) == {}


async def test_a_page_larger_than_the_lanes_room_is_handed_off_in_part(
        receiver: WebhookReceiver, make_config) -> None:
    """The first deliveries of a page fill the lane up to its cap and are committed
    claimed; the rest of the page waits in the outbox, unclaimed, for the lane to drain."""
    config = make_config(rooms=["r1"])
    async with SQLiteStore(config.state, instance="i1") as store:
        sender = Sender(config.webhooks, store)
        try:
            sender._lanes["crm"].held.update(f"d{n}" for n in range(10))
            deliveries = page(range(PER_WEBHOOK_BACKLOG), "crm")
            reserved = sender.reserve(deliveries)
            assert reserved is not None
            assert reserved.ids == {d.id for d in deliveries[:-10]}
            await store.commit_page(None, deliveries, (), claimed=reserved.ids)
            sender.adopt(reserved, ())
            rows = claimants(config.state)
            assert [rows[d.id] for d in deliveries] == ["i1"] * (len(deliveries) - 10) + [
                None] * 10
        finally:
            await sender.shutdown(0)


async def test_shutdown_gives_back_handed_off_deliveries_waiting_to_retry(
        receiver: WebhookReceiver, make_config) -> None:
    """A handed-off delivery waiting between attempts is in the lane's held set: the
    shutdown releases its claim, so the next claim takes it."""
    receiver.set_default_status("/crm", 503)
    config = make_config(rooms=["r1"], webhooks=hook(receiver, "crm", retry_schedule=["30s"]))
    attempted = asyncio.Event()

    def on_attempt(_report: AttemptReport) -> None:
        attempted.set()

    async with SQLiteStore(config.state, instance="i1") as store:
        sender = Sender(config.webhooks, store, on_attempt=on_attempt)
        deliveries = page(range(1), "crm")
        reserved = sender.reserve(deliveries)
        added, _ = await store.commit_page(None, deliveries, (),
                                           claimed=reserved.ids if reserved else ())
        assert claimants(config.state) == {deliveries[0].id: "i1"}
        sender.adopt(reserved, added)
        await asyncio.wait_for(attempted.wait(), 10)
        await sender.shutdown(0.1)
        assert claimants(config.state) == {deliveries[0].id: None}


async def test_a_webhook_removed_between_reserve_and_commit_gets_its_rows_back(
        receiver: WebhookReceiver, make_config) -> None:
    """A reload that removes the webhook while its page is being committed: the rows
    committed claimed for it are released (kept, unsent), not left claimed."""
    config = make_config(rooms=["r1"])
    async with SQLiteStore(config.state, instance="i1") as store:
        sender = Sender(config.webhooks, store)
        try:
            deliveries = page(range(2), "crm", "mod")
            reserved = sender.reserve(deliveries)
            assert reserved is not None
            sender.update_webhooks({"crm": config.webhooks["crm"]})
            added, _ = await store.commit_page(None, deliveries, (),
                                               claimed=reserved.ids)
            sender.adopt(reserved, added)
            mod = {d.id for d in deliveries if d.webhook == "mod"}
            await until(lambda: all(claimants(config.state).get(i, "") is None for i in mod))
            await until(lambda: len(receiver.unique_ids()) == 2)
            assert all(r.path == "/crm" for r in receiver.received)
        finally:
            await sender.shutdown(1)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_rows_committed_claimed_are_left_to_their_instance(
        store_pair: tuple[Any, Any]) -> None:
    """Another instance's claim takes the page's unclaimed rows only; the rows committed
    claimed are this instance's, as if its own claim had marked them."""
    mine, other = store_pair
    deliveries = page(range(3), "crm", "mod")
    crm = {d.id for d in deliveries if d.webhook == "crm"}
    added, _ = await mine.commit_page(None, deliveries, (), claimed=crm)
    assert len(added) == 6
    taken = await other.claim_due(time.time() + 60, 100)
    assert sorted(d.id for d in taken) == sorted(d.id for d in deliveries if d.webhook == "mod")


CRASHING_RUNNER = """
import asyncio, signal, sys, time
from notifier.errors import StoreError
from notifier.events import Delivery, Event
from notifier.polling.client import RoomlioClient
from notifier.polling.tailer import Tailer
from notifier.store import open_store
from notifier.store.postgres import PostgresStore
from notifier.store.sqlite import SQLiteStore

async def main():
    store = SQLiteStore(sys.argv[1], instance="crashed", exclusive=True)
    await store.open()
    event = Event.from_message("message.created", "r1", {"id": "m1"}, ("r",), time.time())
    delivery = Delivery.for_webhook(event, "crm", ("r",))
    added, _ = await store.commit_page(None, [delivery], (), claimed={delivery.id})
    print(len(added), flush=True)
    signal.pause()

asyncio.run(main())
"""


async def test_a_runner_killed_after_a_claimed_commit_leaves_its_rows_to_the_next(
        tmp_path: Path) -> None:
    """SIGKILL after the commit, before any POST: the rows it committed claimed are held
    by nobody alive, and the next runner's exclusive open gives them back to its claims."""
    path = str(tmp_path / "state.db")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_RUNNER, path, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()  # type: ignore[union-attr]
        assert line == b"1\n", (await proc.stderr.read()).decode()  # type: ignore[union-attr]
        assert list(claimants(path).values()) == ["crashed"]
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.communicate()
    async with SQLiteStore(path, instance="next", exclusive=True) as store:
        [delivery] = await store.claim_due(time.time() + 60, 10)
    assert delivery.webhook == "crm" and delivery.event.message == {"id": "m1"}


@pytest.mark.parametrize("lapse", ["claim timeout", "registration"])
async def test_postgres_rows_committed_claimed_by_a_dead_instance_lapse(
        pg_url: str, lapse: str) -> None:
    """A PostgreSQL instance that dies after its commit: its claimed-at-insert rows go to
    the others when the claim's deadline passes, or sooner, when the instance stops
    renewing its registration, exactly as the rows its claims marked do."""
    timeout = 0.5 if lapse == "claim timeout" else 300.0
    async with PostgresStore(pg_url, instance="dead", claim_timeout=timeout) as dead, \
            PostgresStore(pg_url, instance="alive") as alive:
        if lapse == "registration":
            await dead.heartbeat(0.5)
        deliveries = page(range(2), "crm")
        await dead.commit_page(None, deliveries, (), claimed={d.id for d in deliveries})
        assert await alive.claim_due(time.time() + 60, 10) == []
        taken: list[Delivery] = []
        async with asyncio.timeout(10):
            while not taken:
                await asyncio.sleep(0.1)
                taken = await alive.claim_due(time.time() + 60, 10)
    assert sorted(d.id for d in taken) == sorted(d.id for d in deliveries)
