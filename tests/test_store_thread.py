"""The SQLite store's one thread (notifier.store.sqlite.thread): calls run first in, first
out; each outcome reaches its own caller; a call cancelled before it started is skipped."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from notifier.store.sqlite.thread import StoreThread
from tests.opsutil import until


@pytest.fixture
def store_thread() -> Iterator[StoreThread]:
    thread = StoreThread(name="test-store")
    yield thread
    thread.stop()


def _gate(thread: StoreThread) -> tuple[threading.Event, threading.Event]:
    """Block the thread on a call until the returned ``release`` is set."""
    busy, release = threading.Event(), threading.Event()
    thread.call(lambda: busy.set() or release.wait(10))
    return busy, release


async def test_calls_run_in_order_and_each_caller_gets_its_own_outcome(
        store_thread: StoreThread) -> None:
    """Queued calls run one at a time in the order made, on the thread; an exception
    reaches only the caller whose call raised it, and the thread goes on serving."""
    ran: list[int] = []
    names: set[str] = set()
    busy, release = _gate(store_thread)
    await until(busy.is_set)

    def step(n: int) -> int:
        ran.append(n)
        names.add(threading.current_thread().name)
        if n == 2:
            raise ValueError("call 2 failed")
        return n * 10

    futures = [store_thread.call(step, n) for n in range(5)]
    assert store_thread.queued() == 5
    release.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 10)
    assert ran == [0, 1, 2, 3, 4]
    assert names == {"test-store"}
    assert outcomes[:2] == [0, 10] and outcomes[3:] == [30, 40]
    assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "call 2 failed"
    assert await asyncio.wait_for(store_thread.call(step, 7), 10) == 70


async def test_a_call_cancelled_in_the_queue_never_runs(store_thread: StoreThread) -> None:
    """Cancelled while queued: skipped (as an executor would); cancelled while running:
    it runs to its end, only its result is dropped; the calls after both still run."""
    ran: list[str] = []
    busy, release = _gate(store_thread)
    await until(busy.is_set)
    queued = store_thread.call(ran.append, "cancelled in the queue")
    after = store_thread.call(ran.append, "after")
    queued.cancel()
    release.set()
    await after
    assert ran == ["after"]

    busy, release = threading.Event(), threading.Event()

    def slow() -> None:
        busy.set()
        release.wait(10)
        ran.append("running")

    started = store_thread.call(slow)
    then = store_thread.call(ran.append, "then")
    await until(busy.is_set)
    started.cancel()
    release.set()
    await then
    assert ran == ["after", "running", "then"]
