"""One webhook client's total timeout per request, kept by a single timer.

aiohttp enforces a session's total timeout with a timer handle and a timer context per
request (scheduled, entered at each step of the request, cancelled), a cost paid by
every webhook POST (bench/RESULTS.md, "(send5)"). Every request of
one webhook has the same timeout, so their deadlines fall in the order the requests
start: ``Deadlines`` keeps them in that order and one timer, set for the earliest, cancels
each task whose deadline has passed, exactly as aiohttp's timer does (and
``asyncio.timeout``); the request's ``CancelledError`` is then told from any other
cancellation by ``timed_out`` and becomes the timeout failure. A task cancelled by
someone else as well (a shutdown) stays cancelled.
"""

from __future__ import annotations

import asyncio

__all__ = ["Deadlines"]


class Deadlines:
    """The deadlines of one client's requests under way, ``seconds`` after each start."""

    __slots__ = ("_due", "_expired", "_loop", "_seconds", "_timer")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        # insertion order is deadline order: every request waits the same ``seconds``
        self._due: dict[asyncio.Task[object], tuple[float, int]] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, task: asyncio.Task[object]) -> None:
        """``task`` begins a request, to be cancelled if it has not ``end``-ed in time."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or the client moved to another loop
            self._loop, self._timer = loop, None
        due = loop.time() + self._seconds
        # the task's cancellation count now: a later one from elsewhere is not ours
        self._due[task] = (due, task.cancelling())
        if self._timer is None:
            self._timer = loop.call_at(due, self._expire)

    def end(self, task: asyncio.Task[object]) -> None:
        """``task``'s request is over (answered, failed or cancelled)."""
        self._due.pop(task, None)
        self._expired.discard(task)

    def timed_out(self, task: asyncio.Task[object]) -> bool:
        """Whether the CancelledError ``task`` is handling is its deadline's and nobody
        else's (call in its ``except CancelledError``); True consumes that cancellation."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        cancelling = self._due.pop(task, (0.0, 0))[1]
        # as asyncio.timeout: the deadline's cancel is taken back; one more pending
        # (a shutdown) keeps the task cancelled
        return task.uncancel() <= cancelling

    def _expire(self) -> None:
        self._timer = None
        assert self._loop is not None
        now = self._loop.time()
        for task, (due, _cancelling) in self._due.items():
            if due > now:
                self._timer = self._loop.call_at(due, self._expire)
                return
            if task not in self._expired and not task.done():
                self._expired.add(task)
                task.cancel()
