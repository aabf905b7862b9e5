"""The Completer's batches when a caller is cancelled (shutdown cancels delivery tasks)."""

from __future__ import annotations

import asyncio

from notifier.delivery.completer import Completer
from tests.test_scheduler import _SlowWrites


async def test_a_caller_cancelled_during_its_batch_write_leaves_the_write_and_its_mates():
    """Cancelling the delivery whose 2xx started a write cancels neither the write nor the
    wait of the deliveries in the same batch: they return once their ids are removed."""
    writes = _SlowWrites()
    completer = Completer(writes)
    first = asyncio.create_task(completer.delivered("d0"))
    await writes.started.wait()
    rest = [asyncio.create_task(completer.delivered(f"d{i}")) for i in range(1, 3)]
    await asyncio.sleep(0)
    first.cancel()
    writes.release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(*rest)
    assert first.cancelled()
    assert writes.batches == [["d0"], ["d1", "d2"]]
    await completer.drain()


async def test_a_caller_cancelled_while_queued_does_not_stop_the_next_batch():
    writes = _SlowWrites()
    completer = Completer(writes)
    first = asyncio.create_task(completer.delivered("d0"))
    await writes.started.wait()
    queued = [asyncio.create_task(completer.delivered(f"d{i}")) for i in range(1, 3)]
    await asyncio.sleep(0)
    queued[0].cancel()
    writes.release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(first, queued[1])
    assert writes.batches == [["d0"], ["d1", "d2"]]  # its id is removed all the same
