"""How many messages a RoomHistory request asks for: ``page_size`` (the API's maximum by
default) while the poll holds big-page turns of the process's budget, else 100."""

from __future__ import annotations

from collections import Counter

import aiohttp
import pytest

from notifier.config import RoomlioSettings
from notifier.errors import RoomlioAnswerTooLarge, StoreError
from notifier.polling.pagesize import BIG_PAGES, SMALL_PAGE, PageBudget
from notifier.store.sqlite import SQLiteStore
from notifier.testing import RoomlioEmulator
from tests.conftest import running
from tests.tailers import tailer_for
from tests.test_tailer_prefetch import Gated


def limits(emulator: RoomlioEmulator) -> list[int]:
    """The ``limit`` of each RoomHistory request, in the order they arrived."""
    return [r.params["limit"] for r in emulator.requests]


def backlog(emulator: RoomlioEmulator, messages: int) -> None:
    emulator.add_room(key="r1")
    for i in range(messages):
        emulator.post("r1", f"message {i}")


async def test_a_backlog_is_read_in_pages_of_the_apis_maximum_by_default(
        emulator: RoomlioEmulator, make_config, tmp_path) -> None:
    """2,500 messages: three requests of 1,000, not 25 of 100 (the API's default)."""
    backlog(emulator, 2500)
    default = RoomlioSettings(base_url=emulator.url, api_key="k").page_size
    config = make_config(rooms=["r1"])  # the tests' config reads pages of 50
    async with SQLiteStore(str(tmp_path / "s.db")) as store, aiohttp.ClientSession() as s:
        assert await tailer_for(config, store, s, page_size=default).poll() == 2500
    assert limits(emulator) == [1000, 1000, 1000]


async def test_without_free_turns_a_poll_asks_for_100_and_takes_them_once_freed(
        emulator: RoomlioEmulator, make_config, tmp_path) -> None:
    """No turn is free until the second page commits: the two pages asked before that ask
    for 100; the third, asked while the second commits, takes the turns and asks for
    page_size, as the rest do; the poll's end frees them."""
    backlog(emulator, 2500)
    budget = PageBudget(0)

    async def gate(commit: int) -> None:
        if commit == 2:
            budget.free = 2  # another room's poll has ended

    config = make_config(rooms=["r1"])
    async with Gated(str(tmp_path / "s.db"), gate) as store, \
            aiohttp.ClientSession() as session:
        tailer = tailer_for(config, store, session, page_size=1000, budget=budget)
        assert await tailer.poll() == 2500
    assert limits(emulator) == [100, 100, 1000, 1000, 1000]
    assert budget.free == 2


async def test_a_failed_poll_gives_its_turns_back(
        emulator: RoomlioEmulator, make_config, tmp_path) -> None:
    """The first page's commit fails: the poll raises, and its turns are free again."""
    backlog(emulator, 2500)
    budget = PageBudget(2)

    async def gate(commit: int) -> None:
        raise StoreError("disk full")

    config = make_config(rooms=["r1"])
    async with Gated(str(tmp_path / "s.db"), gate) as store, \
            aiohttp.ClientSession() as session:
        with pytest.raises(StoreError):
            await tailer_for(config, store, session, page_size=1000, budget=budget).poll()
    assert limits(emulator)[0] == 1000
    assert budget.free == 2


async def test_an_edit_scan_asks_for_page_size_and_gives_its_turns_back(
        emulator: RoomlioEmulator, make_config, tmp_path) -> None:
    """The window's 150 messages in one request of 1,000; the turns are free after it."""
    backlog(emulator, 150)
    budget = PageBudget(2)
    config = make_config(rooms=["r1"])
    async with SQLiteStore(str(tmp_path / "s.db")) as store, aiohttp.ClientSession() as s:
        tailer = tailer_for(config, store, s, page_size=1000, budget=budget)
        await tailer.poll()
        assert (await tailer.scan_edits(), budget.free) == (150, 2)
    assert limits(emulator) == [1000, 1000]


async def test_the_rooms_of_a_process_share_one_budget(
        emulator: RoomlioEmulator, make_config) -> None:
    """20 rooms with a backlog start their first polls together (each answer takes 1 s):
    16 ask for 1,000 messages, the other 4 for 100 (a budget per room would let all 20)."""
    rooms = [f"r{i}" for i in range(20)]
    for room in rooms:
        emulator.add_room(key=room)
        for i in range(150):
            emulator.post(room, f"message {i}")
    emulator.set_latency(1.0)
    config = make_config(rooms=rooms, roomlio={"page_size": 1000, "edit_lookback": 0})
    async with running(config):
        await emulator.wait_requests(20, timeout=30)
    first = emulator.requests[:20]
    assert {r.room for r in first} == set(rooms)
    assert Counter(r.params["limit"] for r in first) == {1000: BIG_PAGES // 2, 100: 4}


def test_a_small_page_size_takes_no_turn() -> None:
    budget = PageBudget(2)
    turns = budget.turns(SMALL_PAGE)
    assert (turns.limit(), turns.held, budget.free) == (SMALL_PAGE, False, 2)
    turns.release()
    assert budget.free == 2


def test_turns_are_shared_and_given_back_once() -> None:
    """Two polls, one pair of turns: the second asks for 100 until the first ends."""
    budget = PageBudget(2)
    first, second = budget.turns(1000), budget.turns(1000)
    assert (first.limit(), second.limit()) == (1000, SMALL_PAGE)
    assert first.limit() == 1000 and budget.free == 0  # held, not taken again
    first.release()
    first.release()  # a second release gives nothing back twice
    assert budget.free == 2
    assert second.limit() == 1000 and budget.free == 0
    second.release()
    assert budget.free == 2


def test_the_budget_holds_16_polls_of_big_pages() -> None:
    budget = PageBudget()
    polls = [budget.turns(1000) for _ in range(BIG_PAGES // 2 + 1)]
    assert [p.limit() for p in polls] == [1000] * (BIG_PAGES // 2) + [SMALL_PAGE]


async def test_a_page_over_max_response_bytes_is_asked_for_again_in_a_tenth_of_the_messages(
        emulator: RoomlioEmulator, make_config, tmp_path, caplog) -> None:
    """300 messages of 1 KB, answers limited to 50 KB: 1,000 and then 100 messages are too
    many (each asked once, not retried as they were); 10 fit, for the rest of the poll."""
    emulator.add_room(key="r1")
    for i in range(300):
        emulator.post("r1", f"message {i} " + "x" * 1000)
    config = make_config(rooms=["r1"], roomlio={"max_response_bytes": 50_000})
    async with SQLiteStore(str(tmp_path / "s.db")) as store, aiohttp.ClientSession() as s:
        assert await tailer_for(config, store, s, page_size=1000).poll() == 300
    assert limits(emulator) == [1000, 100] + [10] * 30
    shrunk = [r.getMessage() for r in caplog.records if "message(s) a page" in r.getMessage()]
    assert len(shrunk) == 2 and "asking for 10 message(s) a page" in shrunk[1], shrunk


async def test_one_message_over_max_response_bytes_fails_its_poll_and_names_the_setting(
        emulator: RoomlioEmulator, make_config, tmp_path) -> None:
    """Down to one message a page, still too large: the poll fails (the room backs off
    and tries again), and the error says which setting to raise."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund " + "x" * 60_000)
    config = make_config(rooms=["r1"], roomlio={"max_response_bytes": 50_000})
    async with SQLiteStore(str(tmp_path / "s.db")) as store, aiohttp.ClientSession() as s:
        with pytest.raises(RoomlioAnswerTooLarge, match=r"raise roomlio\.max_response_bytes"):
            await tailer_for(config, store, s, page_size=1000).poll()
    assert limits(emulator) == [1000, 100, 10, 1]


def test_a_poll_whose_pages_shrink_to_100_gives_its_turns_back_at_once() -> None:
    budget = PageBudget(2)
    turns = budget.turns(1000)
    assert (turns.limit(), budget.free) == (1000, 0)
    assert (turns.shrink(1000), turns.limit(), budget.free) == (100, 100, 2)
    assert (turns.shrink(100), turns.limit(), budget.free) == (10, 10, 2)


@pytest.mark.parametrize("reader", ["replay", "backtest"])
async def test_replay_and_backtest_read_large_messages_in_fewer_per_page(
        emulator: RoomlioEmulator, make_config, reader: str) -> None:
    """`notifier replay` and `backtest` read history as the tailer does: pages of 1,000
    that cannot fit 50 KB are asked for again in 100 and then 10 messages."""
    from notifier.cli import replay
    from notifier.polling import backtest
    from notifier.polling.client import RoomlioClient

    emulator.add_room(key="r1")
    for i in range(300):
        emulator.post("r1", f"message {i} " + "x" * 1000)
    config = make_config(rooms=["r1"], roomlio={"max_response_bytes": 50_000})
    async with aiohttp.ClientSession() as session:
        client = RoomlioClient(config.roomlio, session)
        since = "2020-01-01T00:00:00Z"
        messages = (replay.history(client, config.rooms[0], since, 1000) if reader == "replay"
                    else backtest.history(client, config.rooms[0], since=since, page_size=1000))
        got = [m async for m in messages]
    assert len(got) == 300
    assert limits(emulator) == [1000, 100] + [10] * 30
