"""A lane's workers (notifier.delivery.workers): deliveries that go well share a few
long-lived tasks; one that fails leaves its worker; a shutdown lets the POST under way
finish and gives the queued deliveries back."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

from notifier.config import Config
from notifier.delivery.sender import DeliveryOutcome, Sender
from notifier.events import Delivery, Event
from notifier.store.sqlite import SQLiteStore
from notifier.testing import Fault, WebhookReceiver


def _deliveries(n: int, webhook: str = "crm") -> list[Delivery]:
    out = []
    for i in range(n):
        message = {"id": f"msg_{i:020d}", "body": f"refund {i}", "userID": "usr_1",
                   "createdAt": "2026-11-25T10:00:02Z", "editedAt": "0001-01-01T00:00:00Z"}
        event = Event.from_message("message.created", "r1", message, ("refunds",), time.time())
        out.append(Delivery.for_webhook(event, webhook, ("refunds",)))
    return out


class _Run:
    """A Sender over a real SQLite outbox holding ``n`` deliveries, with its outcomes."""

    def __init__(self, config: Config, n: int, webhook: str = "crm") -> None:
        self.config, self.n, self.webhook = config, n, webhook
        self.store = SQLiteStore(config.state)
        self.outcomes: list[DeliveryOutcome] = []
        self.changed = asyncio.Event()
        self.stop = asyncio.Event()

    def _outcome(self, outcome: DeliveryOutcome) -> None:
        self.outcomes.append(outcome)
        self.changed.set()

    async def start(self) -> Sender:
        await self.store.open()
        await self.store.commit_page(None, _deliveries(self.n, self.webhook), [])
        self.sender = Sender(self.config.webhooks, self.store, on_outcome=self._outcome)
        self.runner = asyncio.create_task(self.sender.run(self.stop))
        return self.sender

    async def until(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def shutdown(self, grace: float) -> None:
        self.stop.set()
        self.sender.poke()
        await self.runner
        await self.sender.shutdown(grace)


async def test_deliveries_that_go_well_share_the_lanes_workers(
        make_config: Any, receiver: WebhookReceiver) -> None:
    """200 deliveries with max_in_flight 4 run on a few tasks, not one task each."""
    run = _Run(make_config(rooms=["r1"], delivery={"max_in_flight": 4}), 200)
    created: list[str] = []
    loop = asyncio.get_running_loop()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        created.append(f"{coro.__qualname__} ({coro.cr_code.co_filename})")
        return task

    loop.set_task_factory(factory)
    try:
        await run.start()
        await run.until(lambda: len(run.outcomes) == 200)
    finally:
        loop.set_task_factory(None)
        await run.shutdown(1)
        await run.store.close()
    assert all(o.ok and o.attempts == 1 for o in run.outcomes)
    assert len(receiver.unique_ids()) == 200
    # the sender's own (the receiver's server makes its tasks in this loop too), but for
    # the Completer's, one per batch it writes
    ours = [name for name in created
            if "notifier/delivery" in name and not name.startswith("Completer._flush_all")]
    # a task per delivery would be 200 and more
    assert len(ours) < 10, collections.Counter(name.split()[0] for name in ours)


async def test_a_failing_delivery_leaves_its_worker(
        make_config: Any, receiver: WebhookReceiver) -> None:
    """With one slot, the first delivery's 503 and its 30s backoff hold back none of the
    nine others (its Retry-After: 30s); its failed attempt is saved."""
    config = make_config(rooms=["r1"], delivery={"max_in_flight": 1})
    receiver.inject(Fault.status(503, retry_after=30), path="/crm", times=1)
    run = _Run(config, 10)
    try:
        await run.start()
        await run.until(lambda: len(run.outcomes) == 9)
        assert all(o.ok for o in run.outcomes)
        assert len(receiver.attempts) == 10
    finally:
        await run.shutdown(0.1)
    try:
        [(row, *_)] = await run.store.outbox()
        assert row.attempts == 1
    finally:
        await run.store.close()


async def test_a_shutdown_lets_a_workers_post_finish_and_gives_its_queue_back(
        make_config: Any, receiver: WebhookReceiver) -> None:
    """One worker POSTs slowly with four deliveries queued behind it: the shutdown waits
    for that POST, sends none of the four, and leaves them claimable."""
    receiver.inject(Fault.delay(0.3), path="/crm", times=1)
    run = _Run(make_config(rooms=["r1"], delivery={"max_in_flight": 1}), 5)
    try:
        await run.start()
        await receiver.wait_for(lambda rx: bool(rx.attempts), 10)  # the slow POST arrived
        await run.shutdown(5)
        assert len(receiver.attempts) == 1
        assert [o.ok for o in run.outcomes] == [True]
        rows = await run.store.outbox()
        assert len(rows) == 4 and all(row.attempts == 0 for row, *_ in rows)
        assert len(await run.store.claim_due(time.time() + 1, 10)) == 4  # released
    finally:
        await run.store.close()


async def test_a_grouped_delivery_lets_go_of_its_members(
        make_config: Any, receiver: WebhookReceiver) -> None:
    """Six matches sent as one Slack message: once it is recorded, the lane holds none
    of the six (a lane full of settled members would claim nothing more)."""
    hook = {"url": receiver.url_for("/slack"), "format": "slack", "group_wait": "50ms"}
    run = _Run(make_config(rooms=["r1"], webhooks={"slack": hook}), 6, webhook="slack")
    try:
        sender = await run.start()
        await run.until(lambda: len(run.outcomes) == 1)
        assert run.outcomes[0].ok and len(receiver.attempts) == 1
        assert sender.in_flight == 0
    finally:
        await run.shutdown(1)
        await run.store.close()


class _BrokenTransport:
    """A transport with a bug: every POST raises an error that is not a DeliveryError."""

    def __init__(self, calls: list[int], all_made: asyncio.Event) -> None:
        self.calls, self.all_made = calls, all_made

    def scrub(self, text: str) -> str:
        return text

    async def post(self, _delivery: Delivery) -> int:
        self.calls.append(1)
        if len(self.calls) == 3:
            self.all_made.set()
        raise RuntimeError("a bug in the transport")

    async def close(self) -> None:
        return None


async def test_a_transport_bug_lets_go_of_the_delivery_and_the_queue_goes_on(
        make_config: Any) -> None:
    """Each POST raises a RuntimeError: its delivery is let go (its claim kept until a
    restart, as a failed delivery task's) and the next one is still tried."""
    config = make_config(rooms=["r1"], delivery={"max_in_flight": 1})
    store = SQLiteStore(config.state)
    await store.open()
    await store.commit_page(None, _deliveries(3), [])
    calls: list[int] = []
    all_made = asyncio.Event()
    sender = Sender(config.webhooks, store,
                    transport=lambda _webhook: _BrokenTransport(calls, all_made))
    stop = asyncio.Event()
    runner = asyncio.create_task(sender.run(stop))
    try:
        await asyncio.wait_for(all_made.wait(), 10)
        assert sender.in_flight == 0
    finally:
        stop.set()
        sender.poke()
        await runner
        await sender.shutdown(1)
        await store.close()


class _SlowStateStore(SQLiteStore):
    """The real store, whose webhook-state saves wait until ``go`` is set (``saving`` says
    one started): what a state file busy with page commits does to a success's save."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.saving, self.go = asyncio.Event(), asyncio.Event()

    async def save_webhook_state(self, state: Any) -> None:
        self.saving.set()
        await self.go.wait()
        await super().save_webhook_state(state)


async def test_a_shutdown_during_a_successes_state_save_still_records_the_2xx(
        make_config: Any, receiver: WebhookReceiver) -> None:
    """The first 2xx after a start saves the webhook's state; a shutdown that lands while
    that save waits still removes the answered delivery from the outbox (else it is sent
    again after the restart, a duplicate the receiver already acknowledged)."""
    config = make_config(rooms=["r1"], delivery={"max_in_flight": 1})
    store = _SlowStateStore(config.state)
    await store.open()
    await store.commit_page(None, _deliveries(1), [])
    sender = Sender(config.webhooks, store)
    stop = asyncio.Event()
    runner = asyncio.create_task(sender.run(stop))
    try:
        await asyncio.wait_for(store.saving.wait(), 10)  # answered 2xx, saving the state
        assert len(receiver.attempts) == 1
        stop.set()
        sender.poke()
        await runner
        store.go.set()
        await sender.shutdown(1)
        assert await store.outbox() == []
    finally:
        store.go.set()
        await store.close()
