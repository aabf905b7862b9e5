"""What each room costs in memory, and the room handles that keep that cost low."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

from notifier.config import Room, RoomlioSettings
from notifier.polling.scheduler import RoomTurn, Scheduler
from notifier.polling.tailer import Tailer

ROOMS = 2000


async def _idle_step(turn: RoomTurn) -> float | None:
    return 60.0


async def test_a_room_costs_under_700_bytes_in_its_tailer_and_the_schedule() -> None:
    """100,000 rooms must fit in 200 MB: a Tailer and a schedule entry take < 700 bytes
    (a frozenset of names and a closure per handle made it about 1,050)."""
    settings = RoomlioSettings(base_url="http://127.0.0.1:9", api_key="k")
    rooms = [Room(key=f"room-{i}") for i in range(ROOMS)]
    scheduler = Scheduler(_idle_step)
    routes: dict[str, tuple[str, ...]] = {}

    def enqueued(added: object) -> None:
        return None

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for room in rooms:
            tailer = Tailer(room, client=None, store=None, matcher=None,  # type: ignore[arg-type]
                            routes=routes, settings=settings, on_enqueued=enqueued)
            scheduler.add(tailer, 60.0, due=0.0)
        per_room = (tracemalloc.get_traced_memory()[0] - before) / ROOMS
    finally:
        tracemalloc.stop()
    assert per_room < 700


class _FakeRoom:
    def __init__(self, name: str) -> None:
        self.name = name


class _FakeTailer:
    def __init__(self, name: str) -> None:
        self.room = _FakeRoom(name)


async def test_a_room_whose_step_ends_it_leaves_and_its_handle_completes() -> None:
    """A step returning None (a lost lease) takes the room out and completes its handle."""
    stop = asyncio.Event()

    async def step(turn: RoomTurn) -> float | None:
        return None

    scheduler = Scheduler(step)
    handle = scheduler.add(_FakeTailer("a"), 1.0)  # type: ignore[arg-type]
    runner = asyncio.create_task(scheduler.run(stop))
    await asyncio.wait_for(handle, 5)
    assert handle.result() is None and len(scheduler) == 0 and scheduler.turn("a") is None
    stop.set()
    await runner


async def test_cancelling_a_handle_cancels_the_poll_under_way() -> None:
    """A room removed mid-poll (reload, lease given up) stops at once, not after its poll."""
    stop = asyncio.Event()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def step(turn: RoomTurn) -> float | None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1.0

    scheduler = Scheduler(step)
    handle = scheduler.add(_FakeTailer("a"), 1.0)  # type: ignore[arg-type]
    runner = asyncio.create_task(scheduler.run(stop))
    await asyncio.wait_for(started.wait(), 5)
    handle.cancel(msg="room removed")
    await asyncio.wait_for(cancelled.wait(), 5)
    assert len(scheduler) == 0
    stop.set()
    await runner


async def test_scheduling_a_room_again_replaces_its_turn() -> None:
    """Adding a room already scheduled cancels the old handle; the new turn stays."""
    scheduler = Scheduler(_idle_step)
    old = scheduler.add(_FakeTailer("a"), 1.0)  # type: ignore[arg-type]
    new = scheduler.add(_FakeTailer("a"), 2.0)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # done callbacks run on the next loop pass
    turn = scheduler.turn("a")
    assert old.cancelled() and not new.done()
    assert turn is not None and turn.handle is new and turn.interval == 2.0
