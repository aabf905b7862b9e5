"""A webhook client's total timeout per request, kept by one timer
(notifier.delivery.deadlines)."""

from __future__ import annotations

import asyncio
import time

import pytest

from notifier.delivery.deadlines import Deadlines


class _TimedOut(Exception):
    """What ``_request`` raises when its deadline ended it."""


async def _request(deadlines: Deadlines, answered: asyncio.Event) -> str:
    """A request as the transport makes one: its deadline from start to end."""
    task: asyncio.Task[object] = asyncio.current_task()  # type: ignore[assignment]
    deadlines.start(task)
    try:
        await answered.wait()
        return "answered"
    except asyncio.CancelledError:
        if deadlines.timed_out(task):
            raise _TimedOut from None
        raise
    finally:
        deadlines.end(task)


async def test_only_the_requests_past_their_deadline_are_ended():
    """Each request gets its own deadline from its start: an early one times out, one
    started later and answered before its own deadline is not touched."""
    deadlines = Deadlines(0.3)
    never, soon = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_request(deadlines, never))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(_request(deadlines, soon))
    with pytest.raises(_TimedOut):
        await asyncio.wait_for(first, 2)
    soon.set()  # ~0.3 s after the first began: the second's deadline is 0.2 s away
    assert await asyncio.wait_for(second, 2) == "answered"
    assert not second.cancelled() and second.cancelling() == 0


async def test_a_request_started_after_the_others_ended_still_has_a_deadline():
    """The timer is set again for a request that starts once the earlier ones are over."""
    deadlines = Deadlines(0.1)
    done = asyncio.Event()
    done.set()
    assert await _request(deadlines, done) == "answered"  # its timer stays set, for 0.1 s
    await asyncio.sleep(0.05)  # the next one is due after that timer: it must be set again
    with pytest.raises(_TimedOut):
        await asyncio.wait_for(_request(deadlines, asyncio.Event()), 2)


async def test_a_shutdown_landing_with_the_deadline_keeps_the_task_cancelled():
    """Cancelled by its deadline and by someone else at once, the task ends cancelled, not
    timed out: a shutdown is never turned into a failed attempt."""
    deadlines = Deadlines(0.0)  # due at once
    task = asyncio.create_task(_request(deadlines, asyncio.Event()))
    await asyncio.sleep(0)  # started, waiting; its deadline's timer is set
    asyncio.get_running_loop().call_later(0.01, task.cancel)  # the shutdown, due next
    # the loop is held until both are due, so they run in one pass, the deadline first,
    # before the task wakes up
    time.sleep(0.05)  # noqa: ASYNC251 (blocking on purpose, see above)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert task.cancelled()


async def test_a_timed_out_task_is_not_left_cancelling():
    """The deadline's cancellation is taken back: the task goes on (to its retry's
    bookkeeping) and a later cancel still works."""
    deadlines = Deadlines(0.05)

    async def attempt_then_wait() -> str:
        with pytest.raises(_TimedOut):
            await _request(deadlines, asyncio.Event())
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        await asyncio.sleep(0.01)  # a sleep after the timeout is not cancelled
        return "went on"

    assert await asyncio.wait_for(attempt_then_wait(), 2) == "went on"
