"""A failed attempt's bookkeeping survives a shutdown that lands while it is being saved.

After a POST fails, the sender saves the webhook's health (on the first failure) and the
delivery's attempt count (``reschedule``). A SIGTERM in that window used to cancel the
write: after the restart the same attempt number was used again, one attempt beyond
``max_attempts``. Here the real SQLite store's one thread is held busy from the moment
the attempt fails until the sender's shutdown has cancelled the delivery's task.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from notifier.delivery.sender import AttemptReport, Sender
from notifier.events import Delivery, Event
from notifier.store.sqlite import SQLiteStore
from notifier.testing import WebhookReceiver


def _delivery() -> Delivery:
    message = {"id": "msg_00000000000000000001", "body": "refund", "userID": "usr_1",
               "createdAt": "2026-11-25T10:00:02Z", "editedAt": "0001-01-01T00:00:00Z"}
    event = Event.from_message("message.created", "r1", message, ("refunds",), time.time())
    return Delivery.for_webhook(event, "crm", ("refunds",))


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize(("failing_attempt", "max_attempts"), [(1, 5), (2, 5), (2, 2)],
                         ids=["health-save", "reschedule", "dead-letter"])
async def test_a_shutdown_during_a_failed_attempts_save_keeps_its_count(
        make_config, receiver: WebhookReceiver, failing_attempt: int,
        max_attempts: int) -> None:
    """Attempt 1's failure saves the webhook's failing state, then the attempt count;
    attempt 2's saves only the count, or dead-letters the delivery when it was the last:
    a shutdown in any of these writes keeps the count."""
    config = make_config(rooms=["r1"], delivery={"max_attempts": max_attempts,
                                                 "max_backoff": "10ms"})
    receiver.set_default_status("/crm", 503)
    store = SQLiteStore(config.state)
    await store.open()
    gate = threading.Event()
    failed = asyncio.Event()

    def on_attempt(report: AttemptReport) -> None:
        if report.attempt == failing_attempt:
            # the store's only thread is busy (a long write of another task): the sender's
            # writes for this failure queue behind it
            store._thread.call(gate.wait, 10)  # type: ignore[union-attr]
            failed.set()

    try:
        await store.commit_page(None, [_delivery()], [])
        sender = Sender(config.webhooks, store, on_attempt=on_attempt)
        stop = asyncio.Event()
        runner = asyncio.create_task(sender.run(stop))
        await asyncio.wait_for(failed.wait(), 10)
        stop.set()
        sender.poke()
        await runner
        tasks = list(sender._tasks)
        shutdown = asyncio.create_task(sender.shutdown(1))
        await _until(lambda: all(t.cancelling() or t.done() for t in tasks))
        await asyncio.sleep(0.05)  # the cancellation reaches the queued write (old code)
        gate.set()
        await asyncio.wait_for(shutdown, 10)
        if failing_attempt == max_attempts:
            assert await store.outbox() == []
            [letter] = await store.dead_letters()
            assert letter.delivery.attempts == failing_attempt
        else:
            [(row, *_)] = await store.outbox()
            assert row.attempts == failing_attempt
        assert len(receiver.attempts) == failing_attempt
    finally:
        gate.set()
        await store.close()
