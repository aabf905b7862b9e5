"""Small asyncio helpers shared by the daemon's processes and loops (nothing project-specific)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

__all__ = ["YOUNG_GC_THRESHOLD", "finish_first", "run_loop", "sleep_unless", "wait_any"]

#: The cyclic garbage collector's first threshold while ``run_loop`` runs (Python's: 700
#: allocations). A decoded page is tens of thousands of dicts and lists that live until its
#: commit and are then freed by reference counting, never by the collector; at 700 the
#: collector ran hundreds of times a run, traversing them and promoting them to older
#: generations to traverse again (bench/RESULTS.md, "the garbage collector").
YOUNG_GC_THRESHOLD = 10_000

T = TypeVar("T")


async def sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; return whether it was set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def wait_any(*events: asyncio.Event, timeout: float) -> None:
    """Return when any of ``events`` is set or ``timeout`` seconds have passed."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def finish_first(work: Awaitable[T]) -> T:
    """``work``'s result, awaited to its end even when the calling task is cancelled
    meanwhile; the cancellation is then delivered at the task's next await (late, not lost).

    For bookkeeping that must match what already happened: a failed attempt was made, so
    its count is saved even when a shutdown cancels the task in the write (else the next
    run makes that attempt again, one beyond the budget).
    """
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if future.cancelled():  # the work itself was cancelled, not only this task
            raise
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):  # cancelled again: still once
                await asyncio.wait([future])
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # re-armed: raised at the task's next await
        return future.result()


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (a dependency, but for Windows and PyPy:
    the daemon's work is mostly small HTTP requests, where uvloop's cheaper I/O shows), else
    on asyncio's loop; NOTIFIER_LOOP=asyncio forces the latter. The garbage collector's
    first threshold is raised to ``YOUNG_GC_THRESHOLD`` meanwhile."""
    factory = None
    if os.environ.get("NOTIFIER_LOOP", "") != "asyncio":
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
    threshold = gc.get_threshold()
    if 0 < threshold[0] < YOUNG_GC_THRESHOLD:  # 0: the collector is off; it stays so
        gc.set_threshold(YOUNG_GC_THRESHOLD, *threshold[1:])
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    finally:
        gc.set_threshold(*threshold)
