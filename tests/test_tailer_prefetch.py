"""A room catching up reads its next page while the current one commits: at most one page
ahead, committed strictly in order, dropped when the commit before it fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from notifier.delivery.sender import Sender
from notifier.errors import RoomlioAuthError, StoreError
from notifier.store import RoomState
from notifier.store.sqlite import SQLiteStore
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import Outcomes
from tests.tailers import tailer_for

PAGE = 4  # messages per page: three pages of refunds in the room


class Gated(SQLiteStore):
    """The real SQLite store, the room's first state saved; each page commit then first
    waits for ``gate(n)`` (n: the commit's number from 1), which may raise to fail it."""

    def __init__(self, path: str, gate: Callable[[int], Any]) -> None:
        super().__init__(path)
        self.gate, self.commits, self.committed_cursors = gate, 0, list[str | None]()

    async def __aenter__(self) -> Gated:
        await super().__aenter__()
        await super().commit_page(RoomState("r1"), (), ())
        return self

    async def commit_page(self, state: RoomState | None, *args: Any, **kwargs: Any) -> Any:
        self.commits += 1
        await self.gate(self.commits)
        result = await super().commit_page(state, *args, **kwargs)
        self.committed_cursors.append(state.cursor if state else None)
        return result


def cursors(emulator: RoomlioEmulator) -> list[str | None]:
    """The startCursor of each RoomHistory request, in the order they arrived."""
    return [r.params.get("startCursor") for r in emulator.requests]


def fill(emulator: RoomlioEmulator, pages: int = 3) -> None:
    emulator.add_room(key="r1")
    for i in range(PAGE * pages):
        emulator.post("r1", f"refund {i}")


async def test_the_next_page_is_asked_for_while_the_current_one_commits(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config, tmp_path) -> None:
    """Page 1's commit is held until page 2's request has been answered: it was sent with
    page 1's nextCursor before page 1 was durable, and still committed after it."""
    fill(emulator)
    config = make_config(rooms=["r1"])

    async def gate(n: int) -> None:
        if n == 1:  # the first page: its successor must be answered meanwhile
            await emulator.wait_for(lambda e: len(e.requests) == 2 and e.requests[1].done)

    async with Gated(config.state, gate) as store, aiohttp.ClientSession() as session:
        tailer = tailer_for(config, store, session, page_size=PAGE)
        assert await tailer.poll() == 3 * PAGE
        assert store.committed_cursors[:2] == cursors(emulator)[1:]  # in order
        assert store.committed_cursors[2] == emulator.messages("r1")[-1]["id"]
        assert (await store.stats()).outbox == 3 * PAGE
        assert tailer.requests == 3


async def test_a_failed_commit_drops_the_page_read_ahead_and_the_next_poll_reads_it_again(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config) -> None:
    """Page 1's commit fails after page 2 was read ahead: page 2 is neither committed nor
    handed to the sender, the cursor stays where page 1 began, and the next poll starts
    there again and delivers every message once."""
    fill(emulator)
    config = make_config(rooms=["r1"])

    async def gate(n: int) -> None:
        if n == 1:
            await emulator.wait_for(lambda e: len(e.requests) == 2 and e.requests[1].done)
            raise StoreError("disk full (the test's)")

    async with Gated(config.state, gate) as store, aiohttp.ClientSession() as session:
        outcomes = Outcomes()
        sender = Sender(config.webhooks, store, on_outcome=outcomes)
        tailer = tailer_for(config, store, session, sender, page_size=PAGE)
        try:
            with pytest.raises(StoreError, match="disk full"):
                await tailer.poll()
            assert store.commits == 1 and store.committed_cursors == []
            assert await store.load_room("r1") == RoomState("r1")
            assert (await store.stats()).outbox == 0 and outcomes.items == []
            assert sender._lanes["crm"].reserved == 0
            first = len(emulator.requests)
            assert await tailer.poll() == 3 * PAGE
            assert cursors(emulator)[first] is None  # page 1 again, from its own cursor
            await outcomes.wait_for(lambda o: len(o.items) == 3 * PAGE)
        finally:
            await sender.shutdown(1)
    bodies = sorted(r.json["data"]["message"]["body"] for r in receiver.received)
    assert bodies == sorted(f"refund {i}" for i in range(3 * PAGE))


async def test_an_error_reading_ahead_is_raised_after_the_page_before_it_is_committed(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config) -> None:
    """Page 2's request fails for good while page 1 commits: page 1 is committed, the
    poll raises page 2's error as a poll without reading ahead would, and the next poll
    goes on from page 1's cursor."""
    fill(emulator)
    config = make_config(rooms=["r1"])

    async def gate(n: int) -> None:
        if n == 1:
            await emulator.wait_for(lambda e: len(e.requests) == 2 and e.requests[1].done)

    async with Gated(config.state, gate) as store, aiohttp.ClientSession() as session:
        tailer = tailer_for(config, store, session, page_size=PAGE)
        emulator.inject(Fault.delay(0), room="r1")  # the first request: answered
        emulator.inject(Fault.status(403), room="r1")  # the second: refused for good
        with pytest.raises(RoomlioAuthError):
            await tailer.poll()
        page_one = emulator.requests[1].params["startCursor"]
        assert store.committed_cursors == [page_one]
        assert (await store.load_room("r1")).cursor == page_one  # type: ignore[union-attr]
        assert await tailer.poll() == 2 * PAGE
        assert cursors(emulator)[2] == page_one


async def test_a_cancelled_poll_cancels_the_page_read_ahead(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config) -> None:
    """A shutdown cancels the poll while page 1 commits and page 2's request waits for
    its answer: the poll ends cancelled, page 2's request is abandoned, nothing of it is
    committed."""
    fill(emulator)
    config = make_config(rooms=["r1"])
    hold = asyncio.Event()

    async def gate(n: int) -> None:
        if n == 1:
            await hold.wait()

    async with Gated(config.state, gate) as store, aiohttp.ClientSession() as session:
        tailer = tailer_for(config, store, session, page_size=PAGE)
        poll = asyncio.create_task(tailer.poll())
        await emulator.wait_for(lambda e: len(e.requests) == 1 and e.requests[0].done)
        emulator.set_latency(30)  # page 2's answer will not come while the test runs
        await emulator.wait_for(lambda e: len(e.requests) == 2)
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
        await emulator.wait_for(lambda e: e.requests[1].done)  # the client left
        assert emulator.requests[1].status is None
        assert store.committed_cursors == []
        assert await store.load_room("r1") == RoomState("r1")


@pytest.mark.parametrize(("fresh", "expected"), [(True, [5, 5, 5]), (False, [3, 2, 2])],
                         ids=["a new cursor every page", "two cursors in a cycle"])
async def test_reading_ahead_asks_no_page_beyond_the_poll_limits(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config, fresh: bool,
        expected: list[int]) -> None:
    """A poll stops at ``max_pages_per_poll`` (5) or at a cursor it asked for already: it
    reads no page ahead past either, so it sends exactly the requests it did before."""
    fill(emulator)
    emulator.inject(Fault.cursor_loop(fresh=fresh), room="r1", times=1000)
    config = make_config(rooms=["r1"], roomlio={"max_pages_per_poll": 5})

    async def gate(n: int) -> None:
        pass

    async with Gated(config.state, gate) as store, aiohttp.ClientSession() as session:
        tailer = tailer_for(config, store, session, page_size=PAGE)
        counts = []
        for _ in range(3):
            await tailer.poll()
            counts.append(tailer.requests)
        assert counts == expected
    assert len(emulator.requests) == sum(expected)
