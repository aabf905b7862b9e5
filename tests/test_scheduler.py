"""The room scheduler: adaptive polling, the global request budget, batched completions."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from notifier.config import Config
from notifier.delivery.completer import Completer
from notifier.errors import StoreError
from notifier.polling.policy import next_interval
from notifier.polling.scheduler import RoomTurn, Scheduler
from notifier.runtime.service import Service, ServiceHooks
from notifier.testing import RoomlioEmulator, WebhookReceiver
from notifier.util.pacing import TokenBucket
from tests.conftest import running


@pytest.mark.parametrize(("current", "quiet", "expected"), [
    (5.0, 1, 5.0),      # one empty poll is no reason to wait longer
    (5.0, 2, 10.0),     # the second in a row doubles the pause
    (40.0, 5, 60.0),    # up to max_poll_interval
    (60.0, 9, 60.0),    # and stays there
    (60.0, 0, 5.0),     # the first new message brings it back to poll_interval
    (1.0, 3, 10.0),     # never below poll_interval
])
def test_next_interval_backs_off_when_quiet_and_resets_on_news(
        current: float, quiet: int, expected: float) -> None:
    """A quiet room's pause doubles up to the ceiling; a poll that read something resets it."""
    assert next_interval(current, quiet, 5.0, 60.0) == expected


def test_next_interval_ceiling_never_below_poll_interval() -> None:
    """A max_poll_interval below poll_interval leaves polling fixed at poll_interval."""
    assert next_interval(5.0, 4, 5.0, 1.0) == 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spaces_reservations_by_one_over_rate() -> None:
    """Requests asked for at once are given slots 1/rate apart, in the order asked."""
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock)
    assert [bucket.reserve() for _ in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_token_bucket_never_lends_idle_time_as_a_burst() -> None:
    """After a quiet spell only one request goes at once: any window of T seconds holds at
    most 1 + rate × T requests."""
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock)
    bucket.reserve()
    clock.now += 60
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])


async def test_scheduler_serves_rooms_in_the_order_they_fell_due() -> None:
    """With one poll at a time, rooms are polled oldest-due first, each once per round."""
    order: list[str] = []
    stop = asyncio.Event()

    async def step(turn: RoomTurn) -> float | None:
        order.append(turn.tailer.room.name)
        if len(order) == 9:
            stop.set()
        return 0.0

    scheduler = Scheduler(step, concurrency=1)
    for i, name in enumerate(["c", "a", "b"]):
        scheduler.add(_FakeTailer(name), 1.0, due=float(i))  # type: ignore[arg-type]
    await scheduler.run(stop)
    assert order[:9] == ["c", "a", "b"] * 3


async def test_a_room_whose_handle_is_cancelled_leaves_the_schedule() -> None:
    """Cancelling a room's handle (reload removed it, its lease was lost) stops its polls."""
    polled: list[str] = []
    stop = asyncio.Event()
    scheduler: Scheduler

    async def step(turn: RoomTurn) -> float | None:
        polled.append(turn.tailer.room.name)
        if len(polled) == 1:
            handles["a"].cancel()
        if polled.count("b") == 3:
            stop.set()
        return 0.0

    scheduler = Scheduler(step, concurrency=1)
    handles = {n: scheduler.add(_FakeTailer(n), 1.0, due=float(i))  # type: ignore[arg-type]
               for i, n in enumerate("ab")}
    await scheduler.run(stop)
    assert polled == ["a", "b", "b", "b"] and len(scheduler) == 1


async def test_a_step_error_it_cannot_handle_ends_the_scheduler() -> None:
    """An error a step lets through (a bad API key) is raised by run(), as a room task's was."""
    async def step(turn: RoomTurn) -> float | None:
        raise RuntimeError("fatal")

    scheduler = Scheduler(step)
    scheduler.add(_FakeTailer("a"), 1.0)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="fatal"):
        await scheduler.run(asyncio.Event())


class _FakeRoom:
    def __init__(self, name: str) -> None:
        self.name = name


class _FakeTailer:
    def __init__(self, name: str) -> None:
        self.room = _FakeRoom(name)


async def test_a_quiet_room_backs_off_to_max_poll_interval_and_resets_on_a_message(
        make_config: Callable[..., Config], emulator: RoomlioEmulator,
        receiver: WebhookReceiver) -> None:
    """Pauses double from the second empty poll in a row, stop at max_poll_interval, and
    fall back to poll_interval right after the poll that read a new message."""
    emulator.add_room(key="quiet")
    config = make_config(rooms=["quiet"], roomlio={"poll_interval": "10ms",
                                                   "max_poll_interval": "80ms",
                                                   "edit_lookback": 0})
    pauses: list[tuple[float, int]] = []  # (pause before this poll, new messages it read)
    changed = asyncio.Event()

    def on_poll(room: str, _seen: int) -> None:
        assert service.scheduler is not None
        turn = service.scheduler.turn(room)
        assert turn is not None
        pauses.append((turn.interval, turn.tailer.fresh))
        changed.set()

    service = Service(config, hooks=ServiceHooks(on_poll=on_poll))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await _until(changed, lambda: len(pauses) >= 7)
        emulator.post("quiet", "refund please")
        await _until(changed, lambda: any(new for _, new in pauses[:-1]))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    steps = [p for p, _ in pauses]
    assert steps[:6] == pytest.approx([0.01, 0.01, 0.02, 0.04, 0.08, 0.08])
    assert max(steps) == pytest.approx(0.08)
    after = next(i for i, (_, new) in enumerate(pauses) if new) + 1
    assert steps[after] == pytest.approx(0.01)


async def _until(changed: asyncio.Event, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not predicate():
            changed.clear()
            await changed.wait()


async def test_max_requests_per_second_holds_across_many_rooms_and_serves_each_in_turn(
        make_config: Callable[..., Config], emulator: RoomlioEmulator,
        receiver: WebhookReceiver) -> None:
    """30 rooms polled every 10ms would ask 3,000/s; with a budget of 40/s they ask 40/s
    (measured over 90 requests, so a stall of either process cannot fake a burst), and
    rooms take turns: once all have started, every room is polled in two rounds' worth of
    requests and none more than three times.

    Polling is fixed (max_poll_interval = poll_interval): the rooms are empty, and with
    adaptive polling the first rooms to start spend the budget the ramp leaves spare on
    quick empty polls and back off to pauses longer than a round (0.75s). Such a room is
    rightly not due, and whether its next place (set by the wall clock) falls inside the
    two rounds is chance: the turns are what this test is about."""
    rooms = [f"r{i}" for i in range(30)]
    for room in rooms:
        emulator.add_room(key=room)
    config = make_config(rooms=rooms, roomlio={"poll_interval": "10ms",
                                               "max_poll_interval": "10ms", "edit_lookback": 0,
                                               "max_requests_per_second": 40})
    async with running(config):
        await emulator.wait_requests(90, timeout=30)
        # a room's first poll saves its state (a synced write) before it asks: on a busy
        # disk one can start late, and the rounds are counted from when all have started
        await emulator.wait_for(lambda emu: {r.room for r in emu.requests} >= set(rooms), 30)
        started = 1 + max(next(i for i, r in enumerate(emulator.requests) if r.room == room)
                          for room in rooms)
        await emulator.wait_requests(started + 60, timeout=30)
    times = [r.time for r in emulator.requests[:90]]
    assert (len(times) - 1) / (times[-1] - times[0]) <= 40 * 1.1
    later = Counter(r.room for r in emulator.requests[started:started + 60])
    assert set(later) == set(rooms) and max(later.values()) <= 3, later


class _SlowWrites:
    """A store's ``delivered`` whose writes finish only when the test lets them."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.fail = fail

    async def __call__(self, ids: Sequence[str]) -> None:
        self.batches.append(list(ids))
        self.started.set()
        await self.release.wait()
        if self.fail:
            raise StoreError("disk full")


async def test_completions_arriving_during_a_write_share_the_next_transaction() -> None:
    """The first 2xx is written alone at once; the ones that finish meanwhile go together."""
    writes = _SlowWrites()
    completer = Completer(writes)
    first = asyncio.create_task(completer.delivered("d0"))
    await writes.started.wait()
    rest = [asyncio.create_task(completer.delivered(f"d{i}")) for i in range(1, 6)]
    await asyncio.sleep(0)  # one turn of the loop: each of them queues its id
    writes.release.set()
    await asyncio.gather(first, *rest)
    assert writes.batches == [["d0"], ["d1", "d2", "d3", "d4", "d5"]]
    assert completer.flushes == 2


async def test_a_failed_batch_write_raises_in_every_caller_of_the_batch() -> None:
    """A StoreError reaches each delivery of the batch, so each is released and retried."""
    writes = _SlowWrites(fail=True)
    completer = Completer(writes)
    calls = [asyncio.create_task(completer.delivered(f"d{i}")) for i in range(3)]
    await writes.started.wait()
    writes.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results)
