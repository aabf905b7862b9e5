"""Record successful deliveries in batches: one store transaction for many 2xx answers.

A group commit: the first completion starts a flush at once; completions that arrive
while a flush is being written wait for the next one, which takes them all. At low load
every delivery is recorded alone with no added delay; under load one transaction (one
fsync, one thread hop) covers as many deliveries as finished during the previous one.

At-least-once is unchanged: each caller awaits the flush holding its id (``delivered``)
or is called back after it (``add``: a lane's worker, which goes on to its next delivery
instead of waiting), and a delivery stays claimed in the outbox until that flush has
deleted it. A failed flush raises the StoreError in every caller of the batch (passes it
to every callback), exactly as a failed single ``delivered`` would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["MAX_BATCH", "Completer", "Then"]

log = logging.getLogger("notifier.delivery")

#: Ids one transaction removes at most (keeps one flush short under a big backlog).
MAX_BATCH = 1024

#: Called once the batch holding a delivery is written: with None, or the write's error.
Then = Callable[[Exception | None], None]


class Completer:
    """``await completer.delivered(id)`` returns once ``id`` has left the outbox."""

    def __init__(self, write: Callable[[Sequence[str]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: list[tuple[str, Then]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.flushes = 0
        """Transactions written so far (for tests and benchmarks)."""

    async def delivered(self, delivery_id: str) -> None:
        """Remove ``delivery_id`` from the outbox with the next batch; raise its error."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.add(delivery_id, lambda error: _settle(done, error))
        # The write runs in its own task: a caller cancelled at shutdown cancels only its own
        # future (skipped by the flush), never its batch-mates' write. No shield needed (it
        # cost two futures' callbacks per delivery).
        await done

    def add(self, delivery_id: str, then: Then) -> None:
        """Remove ``delivery_id`` from the outbox with the next batch, then call ``then``
        (no future, no task step per delivery: a lane's worker does not wait for it)."""
        self._pending.append((delivery_id, then))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush_all(), name="record deliveries")

    async def drain(self) -> None:
        """Wait for the batch being written, and any queued behind it (shutdown)."""
        while self._flushing is not None:
            await asyncio.shield(self._flushing)

    async def _flush_all(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._flush(batch)
        finally:
            self._flushing = None

    async def _flush(self, batch: list[tuple[str, Then]]) -> None:
        self.flushes += 1
        error: Exception | None = None
        try:
            await self._write([i for i, _ in batch])
        except Exception as exc:  # each caller handles it (the sender releases and retries)
            error = exc
        for _, then in batch:
            try:
                then(error)
            except Exception:  # a listener's bug must not skip its batch-mates' callbacks
                log.exception("recording a delivery's outcome failed")


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    """``delivered``'s callback: its caller's future, unless a shutdown cancelled it."""
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
        done.exception()  # retrieved: a caller cancelled at shutdown logs nothing
