"""POST deliveries to their webhooks, retrying with tenacity, recording every outcome.

The dispatcher claims due deliveries from the store, per webhook and up to a cap, and
runs each in its own task. A delivery's attempts run under the webhook's
``max_in_flight`` semaphore; the backoff sleeps between attempts run outside it, so a
failing delivery never blocks its webhook's healthy ones, and no webhook blocks another
(each has its own connection pool). Each failed attempt is persisted before the sleep,
so a restart resumes the retry budget where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from notifier.config import Webhook
from notifier.delivery.http import WebhookClient
from notifier.errors import DeliveryError, DeliveryTransientError, StoreError
from notifier.events import Delivery
from notifier.retrying import RetryAfterWait
from notifier.store import Store

__all__ = ["DeliveryOutcome", "Sender"]

log = logging.getLogger("notifier.delivery")

#: Deliveries one webhook may hold in memory (attempting or waiting to retry).
PER_WEBHOOK_BACKLOG = 512
#: First backoff step; grows to the webhook's max_backoff.
BACKOFF_BASE = 1.0


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What became of one delivery: reported to listeners (the demo, metrics)."""

    delivery: Delivery
    ok: bool
    attempts: int
    status: int | None
    error: str = ""


@dataclass
class _WebhookLane:
    webhook: Webhook
    client: WebhookClient
    semaphore: asyncio.Semaphore
    held: set[str] = field(default_factory=set)


class Sender:
    """Owns one HTTP client per webhook and the dispatch loop."""

    def __init__(self, webhooks: Mapping[str, Webhook], store: Store, *,
                 on_outcome: Callable[[DeliveryOutcome], None] | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self._store = store
        self._on_outcome = on_outcome
        self._clock = clock
        self._rng = rng or random.Random()
        self._lanes = {
            name: _WebhookLane(w, WebhookClient(w), asyncio.Semaphore(w.max_in_flight))
            for name, w in webhooks.items()
        }
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._posting: set[asyncio.Task[None]] = set()

    def poke(self, _added: object = None) -> None:
        """New deliveries were committed: look for due work now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set; in-flight tasks are left to ``shutdown``."""
        while not stop.is_set():
            self._wake.clear()
            try:
                claimed = await self._claim()
                delay = 0.0 if claimed else await self._idle_delay()
            except StoreError as exc:
                log.error("cannot read the outbox: %s; trying again in 5s", exc)
                delay = 5.0
            if delay > 0:
                await _wait_any(self._wake, stop, timeout=delay)

    async def _claim(self) -> int:
        held = frozenset().union(*(lane.held for lane in self._lanes.values()))
        open_lanes = [n for n, lane in self._lanes.items() if len(lane.held) < PER_WEBHOOK_BACKLOG]
        if not open_lanes:
            return 0
        batch = await self._store.claim_due(self._clock(), 256, held, webhooks=open_lanes)
        for delivery in batch:
            lane = self._lanes.get(delivery.webhook)
            if lane is None:
                # the webhook was removed from the config: keep the row, do not send
                await self._store.release([delivery.id])
                continue
            lane.held.add(delivery.id)
            task = asyncio.create_task(self._deliver(lane, delivery), name=f"deliver {delivery.id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        return len(batch)

    async def _idle_delay(self) -> float:
        due = await self._store.next_due()
        if due is None:
            return 5.0
        return min(5.0, max(0.05, due - self._clock()))

    async def _deliver(self, lane: _WebhookLane, delivery: Delivery) -> None:
        webhook = lane.webhook
        remaining = max(1, webhook.max_attempts - delivery.attempts)

        async def before_sleep(state: RetryCallState) -> None:
            await self._persist_failure(delivery, state)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(DeliveryTransientError),
            wait=RetryAfterWait(base=BACKOFF_BASE, cap=webhook.max_backoff,
                                offset=delivery.attempts, rng=self._rng),
            stop=stop_after_attempt(remaining),
            before_sleep=before_sleep,
            reraise=True,
        )
        attempt_no = delivery.attempts
        try:
            async for attempt in retrying:
                with attempt:
                    attempt_no = delivery.attempts + attempt.retry_state.attempt_number
                    await self._attempt(lane, delivery)
            await self._store.delivered([delivery.id])
            self._report(DeliveryOutcome(delivery, True, attempt_no, None))
        except DeliveryError as exc:
            await self._store.dead_letter(delivery.id, attempt_no, exc.status, str(exc))
            log.error("webhook %s: delivery %s dead-lettered after %d attempt(s); last: %s",
                      webhook.name, delivery.id, attempt_no, exc)
            self._report(DeliveryOutcome(delivery, False, attempt_no, exc.status, str(exc)))
        finally:
            lane.held.discard(delivery.id)

    async def _attempt(self, lane: _WebhookLane, delivery: Delivery) -> None:
        async with lane.semaphore:
            task = asyncio.current_task()
            assert task is not None
            self._posting.add(task)
            try:
                await lane.client.post(delivery)
            finally:
                self._posting.discard(task)

    async def _persist_failure(self, delivery: Delivery, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        attempts = delivery.attempts + state.attempt_number
        status = getattr(exc, "status", None)
        log.warning("webhook %s: attempt %d for %s failed (%s); retrying in %.1fs",
                    delivery.webhook, attempts, delivery.id, exc, sleep)
        await self._store.reschedule(delivery.id, attempts, self._clock() + sleep, status,
                                     str(exc))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the delivery stays claimed in the outbox and is retried after a restart
            log.error("delivery task failed: %s", task.exception())

    def _report(self, outcome: DeliveryOutcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    @property
    def in_flight(self) -> int:
        """Deliveries held in memory (attempting or waiting to retry)."""
        return len(self._tasks)

    async def shutdown(self, grace: float) -> None:
        """Let POSTs under way finish within ``grace``; cancel the rest; release claims."""
        held = [i for lane in self._lanes.values() for i in lane.held]
        posting = set(self._posting)
        if posting:
            log.info("waiting up to %.1fs for %d delivery(ies) in flight", grace, len(posting))
            await asyncio.wait(posting, timeout=grace)
        waiting = [t for t in self._tasks if not t.done()]
        for task in waiting:
            task.cancel(msg="shutting down: the delivery stays in the outbox")
        await asyncio.gather(*waiting, return_exceptions=True)
        if held:
            await self._store.release(held)
        for lane in self._lanes.values():
            await lane.client.close()


async def _wait_any(wake: asyncio.Event, stop: asyncio.Event, *, timeout: float) -> None:
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


