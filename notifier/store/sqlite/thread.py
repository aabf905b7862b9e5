"""The SQLite store's one thread: it runs the store's calls in the order they were made
and hands each result to the event loop that asked for it.

A ``ThreadPoolExecutor`` of one worker did this before, at about twice the CPU per call
(a concurrent future with its condition variable, the executor's locks, and the two
futures chained across the threads; bench/RESULTS.md, issue 16, "store5"). The semantics
are the executor's: first in, first out; a call whose future was cancelled before it
started is skipped, one that started runs to its end (its result is dropped).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import suppress
from queue import SimpleQueue
from typing import Any, TypeVar

__all__ = ["StoreThread"]

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]",
             asyncio.AbstractEventLoop]


class StoreThread:
    """One thread that runs ``call``\\ s one at a time, first in, first out."""

    def __init__(self, name: str = "notifier-store") -> None:
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        # A daemon: a store never closed must not keep the interpreter from exiting (its
        # file is crash-safe; a write cut short was never reported as done).
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` on the thread, after every call made before; its future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, args, future, loop))
        return future

    def queued(self) -> int:
        """Calls waiting for the thread (not counting the one it runs)."""
        return self._jobs.qsize()

    def stop(self) -> None:
        """Let the thread end once the calls made before have run."""
        self._jobs.put(None)

    def _serve(self) -> None:
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            fn, args, future, loop = job
            if future.cancelled():  # its caller gave up before it started: skip it
                continue
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # the caller's to handle, as an executor would
                result, error = None, exc
            with suppress(RuntimeError):  # raised when the loop closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result, error)
            del job, fn, args, future, result, error  # nothing kept alive while idle


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the loop: pass the call's outcome on, unless its caller was cancelled."""
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
