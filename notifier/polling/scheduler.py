"""Poll many rooms from one task: a heap ordered by when each room is next due.

A sleeping task per room costs memory and wake-ups that grow with the rooms watched;
one heap costs a tuple per room and wakes only when a room is due. Rooms are served in
the order they fell due, so when polls are held back (by ``max_requests_per_second`` or
the concurrency cap) every room waits its turn and none is starved.

How long a room waits between polls is ``notifier.polling.policy``'s (each room keeps its
own place within its interval, so rooms sharing an interval are spread over it); the global
request budget is a notifier.util.pacing.TokenBucket.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from notifier.config import RoomlioSettings
from notifier.polling.client import RoomlioClient
from notifier.polling.policy import budget_period, edit_scan_due, ramp_window, slot_delay
from notifier.polling.tailer import Tailer
from notifier.util import tracing
from notifier.util.pacing import TokenBucket

__all__ = ["MAX_CONCURRENT_POLLS", "OnRead", "RoomTurn", "Scheduler", "ThrottledClient",
           "budget_note", "first_poll_delay", "read_room"]

log = logging.getLogger("notifier.scheduler")

#: Polls under way at once; more rooms wait in the heap, in the order they fell due.
MAX_CONCURRENT_POLLS = 64




class ThrottledClient(RoomlioClient):
    """A RoomlioClient whose every request (retries and edit scans too) takes a token."""

    def __init__(self, *args: Any, bucket: TokenBucket, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bucket = bucket

    async def call(self, method: str, params: Mapping[str, Any]) -> Any:
        await self.bucket.take()
        return await super().call(method, params)


@dataclass(eq=False, slots=True)
class RoomTurn:
    """One room's place in the schedule and what its polls remember."""

    tailer: Tailer
    handle: asyncio.Future[None]
    """Done when the room leaves the schedule; cancelling it removes the room."""
    interval: float
    quiet: int = 0
    """Polls in a row that found nothing new."""
    failures: int = 0
    next_scan: float = 0.0
    polling: asyncio.Task[None] | None = field(default=None, repr=False)


#: One poll of a room; returns the seconds until its next, or None to leave the schedule.
Step = Callable[[RoomTurn], Awaitable[float | None]]

#: Told of a room's read: (room, "poll" or "edit_scan", RoomHistory requests it sent).
OnRead = Callable[[str, str, int], None]


async def read_room(turn: RoomTurn, settings: RoomlioSettings, on_read: OnRead | None) -> int:
    """One turn's read of its room; returns the messages read.

    The edit scan when it is due (``policy.edit_scan_due``); when the scan read what a poll
    would have (``Tailer.caught_up``), it is the room's poll too, otherwise the poll
    follows. ``turn.tailer.fresh`` tells adaptive polling what the read found."""
    tailer, seen = turn.tailer, 0
    if settings.edit_lookback > 0 and edit_scan_due(time.monotonic(), turn.next_scan,
                                                    turn.interval):
        turn.next_scan = time.monotonic() + settings.edit_scan_interval
        with tracing.edit_scan(tailer.room.name) as span:
            seen = await tailer.scan_edits()
            span.read(seen)
        if on_read is not None and tailer.requests:
            on_read(tailer.room.name, "edit_scan", tailer.requests)
        if tailer.caught_up:
            return seen
    with tracing.poll(tailer.room.name) as span:
        polled = await tailer.poll()
        span.read(polled, tailer.fresh)
    seen += polled
    if on_read is not None:
        on_read(tailer.room.name, "poll", tailer.requests)
    return seen


def first_poll_delay(name: str, settings: RoomlioSettings, rooms: int) -> float:
    """Seconds until room ``name``'s first poll, one of ``rooms`` starting together: its
    place within the ramp window (``policy.ramp_window``), so that they do not all ask at
    once."""
    window = ramp_window(rooms, settings.poll_interval, settings.max_poll_interval,
                         settings.max_requests_per_second)
    return slot_delay(name, window, time.time())


def budget_note(settings: RoomlioSettings, rooms: int) -> str:
    """"" when ``max_requests_per_second`` can poll each of ``rooms`` once per
    ``max_poll_interval``; else a line saying how late rooms will be polled."""
    rate = settings.max_requests_per_second
    period = budget_period(rooms, max(settings.max_poll_interval, settings.poll_interval),
                           rate)
    if period is None:
        return ""
    return (f"roomlio.max_requests_per_second {rate} cannot poll {rooms} rooms once per "
            f"max_poll_interval ({settings.max_poll_interval:g}s needs "
            f"{rooms / settings.max_poll_interval:.1f}/s): rooms take turns and each is "
            f"polled about every {period:.0f}s")


#: The context the handles' done callback runs in: it needs none, and copying the
#: current one for each of 100,000 handles costs memory.
_NO_CONTEXT = contextvars.Context()


class _Handle(asyncio.Future[None]):
    """A room's handle that knows its turn, so one shared done callback serves every room
    (a closure per room would cost memory with every room watched)."""

    __slots__ = ("turn",)

    turn: RoomTurn


class Scheduler:
    """Runs ``step`` for each room when it falls due, up to ``concurrency`` at once."""

    def __init__(self, step: Step, *, concurrency: int = MAX_CONCURRENT_POLLS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._step = step
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._turns: dict[str, RoomTurn] = {}
        self._heap: list[tuple[float, int, RoomTurn]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._fatal: BaseException | None = None
        self._handle_done = self._dropped  # one bound method for every handle

    def __len__(self) -> int:
        return len(self._turns)

    def add(self, tailer: Tailer, interval: float, *, due: float | None = None,
            next_scan: float = 0.0) -> asyncio.Future[None]:
        """Schedule ``tailer`` (first poll at ``due``, default now); return its handle."""
        name = tailer.room.name
        old = self._turns.get(name)
        if old is not None:
            old.handle.cancel(msg="room scheduled again")
        handle = _Handle(loop=asyncio.get_running_loop())
        turn = handle.turn = RoomTurn(tailer, handle, interval, next_scan=next_scan)
        self._turns[name] = turn
        handle.add_done_callback(self._handle_done, context=_NO_CONTEXT)
        self._push(turn, self._clock() if due is None else due)
        return handle

    def turn(self, name: str) -> RoomTurn | None:
        """The schedule entry of room ``name`` (None when not scheduled)."""
        return self._turns.get(name)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll rooms as they fall due until ``stop``; raise what a step raised.

        A step raises only what must stop the process (the service's step turns every
        other error of a room's poll, unexpected ones included, into that room's failure
        and backoff), so whatever escapes a step ends the run."""
        polls: set[asyncio.Task[None]] = set()
        stopping = asyncio.create_task(self._stop_wakes(stop), name="scheduler stop")
        try:
            while not stop.is_set() and self._fatal is None:
                turn = await self._next_due()
                if turn is None:
                    continue
                await self._slots.acquire()
                task = asyncio.create_task(self._poll(turn), name=f"poll {turn.tailer.room.name}")
                turn.polling = task
                polls.add(task)
                task.add_done_callback(polls.discard)
        finally:
            stopping.cancel()
            for task in list(polls):
                task.cancel(msg="polling stops")
            await asyncio.gather(stopping, *polls, return_exceptions=True)
        if self._fatal is not None:
            raise self._fatal

    async def _stop_wakes(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _next_due(self) -> RoomTurn | None:
        while self._heap:
            due, _, turn = self._heap[0]
            if self._turns.get(turn.tailer.room.name) is not turn:
                heapq.heappop(self._heap)  # removed or replaced since it was pushed
                continue
            wait = due - self._clock()
            if wait <= 0:
                heapq.heappop(self._heap)
                return turn
            break
        else:
            wait = 3600.0
        # one timer per sleep, cheaper than a timeout around an event's wait
        self._wake.clear()
        timer = asyncio.get_running_loop().call_later(wait, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()
        return None

    async def _poll(self, turn: RoomTurn) -> None:
        try:
            delay = await self._step(turn)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fatal = exc
            self._wake.set()
            return
        finally:
            turn.polling = None
            self._slots.release()
        if delay is None:
            if not turn.handle.done():
                turn.handle.set_result(None)
        elif self._turns.get(turn.tailer.room.name) is turn:
            self._push(turn, self._clock() + delay)

    def _push(self, turn: RoomTurn, due: float) -> None:
        if not self._heap or due < self._heap[0][0]:
            self._wake.set()  # earlier than what run() sleeps for
        heapq.heappush(self._heap, (due, next(self._order), turn))

    def _dropped(self, handle: asyncio.Future[None]) -> None:
        assert isinstance(handle, _Handle)
        turn = handle.turn
        name = turn.tailer.room.name
        if self._turns.get(name) is turn:
            del self._turns[name]
        if turn.polling is not None:
            turn.polling.cancel(msg="room left the schedule")

