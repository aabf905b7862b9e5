"""Take deliveries to POST to their webhooks: handed off at a page's commit, or claimed.

The dispatcher claims due deliveries from the store, per webhook and up to a cap, and
queues each on its lane's workers (notifier.delivery.workers: a delivery that goes well
costs no task of its own; one that must wait or retry goes on in its own task, its
attempts: notifier.delivery.attempts); the deliveries a
page of this process adds for a lane with room are handed over at its commit instead
(``reserve``/``adopt``: added claimed, started from memory, never claimed or decoded
again; a page whose lanes are full waits for room first: notifier.delivery.backpressure).
Each webhook has its own lane (notifier.delivery.lanes): its connection pool,
slots, rate limit and the deliveries it holds, so no webhook blocks another. A shutdown
lets the POSTs under way finish within its grace, cancels the rest and gives their claims
back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from notifier.config import Webhook
from notifier.delivery import backpressure
from notifier.delivery.attempts import AttemptReport, Deliverer, DeliveryOutcome
from notifier.delivery.backpressure import Short
from notifier.delivery.grouping import GroupedStore, Grouper
from notifier.delivery.healthboard import HealthBoard
from notifier.delivery.lanes import (
    PER_WEBHOOK_BACKLOG,
    Reservation,
    WebhookLane,
    first_retry_wait,
)
from notifier.delivery.ratelimit import Slots, limiter_for
from notifier.delivery.transport import TransportFactory, open_transport
from notifier.delivery.workers import LaneWorkers
from notifier.errors import StoreError
from notifier.events import Delivery
from notifier.store import Store
from notifier.util.aio import wait_any

__all__ = ["PER_WEBHOOK_BACKLOG", "AttemptReport", "DeliveryOutcome", "Reservation", "Sender",
           "first_retry_wait"]

log = logging.getLogger("notifier.delivery")


class Sender:
    """Owns one transport per webhook (built by ``transport``: the webhook's ``http_client``
    unless given another, see notifier.delivery.transport) and the dispatch loop."""

    def __init__(self, webhooks: Mapping[str, Webhook], store: Store, *,
                 on_outcome: Callable[[DeliveryOutcome], None] | None = None,
                 on_attempt: Callable[[AttemptReport], None] | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 ops_webhook: str | None = None,
                 transport: TransportFactory = open_transport,
                 backlog: int = PER_WEBHOOK_BACKLOG) -> None:
        self.health = HealthBoard(webhooks, store, clock=clock, ops_webhook=ops_webhook,
                                  on_enqueued=self.poke, on_recovered=self.poke)
        self._grouped = GroupedStore(store)
        self._store: Store = self._grouped  # a Store: it delegates what it does not expand
        self._transport = transport
        """Builds each webhook's Transport: its ``http_client``'s unless told otherwise."""
        self._deliverer = Deliverer(self._store, self.health, poke=self.poke,
                                    on_outcome=on_outcome, on_attempt=on_attempt, clock=clock,
                                    rng=rng or random.Random())
        self._workers = LaneWorkers(self._deliverer, self._spawn)
        self._clock = clock
        self._backlog = backlog
        """Each lane's capacity (``lanes.lane_capacity`` of the pages handed off)."""
        self._lanes = {name: self._new_lane(w) for name, w in webhooks.items()}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._retired: list[WebhookLane] = []
        """Lanes a reload replaced or removed: closed (and released) at shutdown."""
        self._closing = False
        """Set by ``shutdown``: pages committed from then on are not handed over."""
        self._waiting = 0
        """Pages waiting for room in the lanes (``room_for``)."""

    def _new_lane(self, webhook: Webhook) -> WebhookLane:
        lane = WebhookLane(webhook, self._transport(webhook), Slots(webhook.max_in_flight),
                           self._deliverer.retry(webhook), limiter_for(webhook.rate_limit),
                           capacity=self._backlog)
        if webhook.group_wait > 0:
            lane.grouper = Grouper(webhook.group_wait, functools.partial(self._start, lane))
        return lane

    def update_webhooks(self, webhooks: Mapping[str, Webhook]) -> None:
        """Adopt a reloaded config's webhooks; each change applies from the next attempt.

        A changed webhook gets a new client (URL, secrets, headers, timeout), concurrency
        and rate limit; a removed one is claimed no more (its outbox rows stay), and its
        deliveries in flight finish their attempts. ``group_wait`` changes need a restart.
        """
        self.health.track(webhooks)
        for name in [n for n in self._lanes if n not in webhooks]:
            self._retired.append(self._lanes.pop(name))
        for name, w in webhooks.items():
            lane = self._lanes.get(name)
            if lane is None:
                self._lanes[name] = self._new_lane(w)
            elif lane.webhook != w:
                self._retired.append(WebhookLane(lane.webhook, lane.client, lane.semaphore,
                                                 lane.retry))
                lane.client = self._transport(w)
                lane.retry = self._deliverer.retry(w)
                if w.max_in_flight != lane.webhook.max_in_flight:
                    lane.semaphore = Slots(w.max_in_flight)
                if w.rate_limit != lane.webhook.rate_limit:
                    lane.limiter = limiter_for(w.rate_limit)
                lane.webhook = w
        self.poke()

    def reserve(self, deliveries: Sequence[Delivery]) -> Reservation | None:
        """Room for the deliveries of a page that can start as soon as they are committed,
        in page order, each lane up to its room (``WebhookLane.room``; breaker closed or
        probing, not disabled), reserved so that concurrent pages keep it under its cap;
        None when there is none. The caller commits them claimed (``Store.commit_page``'s
        ``claimed``), then hands the result to ``adopt``, also when the commit failed."""
        if self._closing:
            return None
        room: dict[str, int] = {}  # webhook -> room left in its lane as the page is read
        taken: dict[str, int] = {}
        ids: set[str] = set()
        for delivery in deliveries:
            name = delivery.webhook
            if name not in room:
                room[name] = self._room_in(name)
            if room[name] > taken.get(name, 0):
                ids.add(delivery.id)
                taken[name] = taken.get(name, 0) + 1
        if not ids:
            return None
        lanes: dict[str, tuple[WebhookLane, int]] = {}
        for name, count in taken.items():
            lane = self._lanes[name]
            lane.reserved += count
            lanes[name] = (lane, count)
        return Reservation(frozenset(ids), lanes)

    def room_for(self, deliveries: Sequence[Delivery]) -> Awaitable[None] | None:
        """None when the page's deliveries need not wait before ``reserve``; else the wait
        for room in its lanes (notifier.delivery.backpressure)."""
        if self._closing or self._waiting >= backpressure.MAX_WAITING:
            return None
        shares = Counter(delivery.webhook for delivery in deliveries)
        if self._short(shares) is None:
            return None
        return self._wait_for_room(shares)

    async def _wait_for_room(self, shares: Mapping[str, int]) -> None:
        self._waiting += 1
        try:
            await backpressure.wait_for_room(
                lambda: None if self._closing else self._short(shares))
        finally:
            self._waiting -= 1

    def _short(self, shares: Mapping[str, int]) -> Short | None:
        return backpressure.short_of_room(shares, self._lanes, self.health.claimable)

    def _room_in(self, webhook: str) -> int:
        lane = self._lanes.get(webhook)
        if lane is None or not self.health.claimable(webhook):
            return 0
        return lane.room()

    def adopt(self, reservation: Reservation | None, added: Sequence[Delivery]) -> None:
        """Start the deliveries of ``added`` that ``reservation`` had committed claimed, as
        if claimed from the outbox, and free the reservation (``added`` empty: the commit
        failed). A lane a reload removed or made ordered meanwhile gives its rows back."""
        if reservation is None:
            return
        for lane, count in reservation.lanes.values():
            lane.reserved -= count
        stray: list[str] = []
        for delivery in added:
            if delivery.id not in reservation.ids:
                continue
            lane = reservation.lanes[delivery.webhook][0]
            if self._lanes.get(delivery.webhook) is not lane or lane.webhook.ordered:
                stray.append(delivery.id)
                continue
            lane.held.add(delivery.id)
            self._start(lane, delivery)
        if stray:
            self._spawn(self._deliverer.release_when_possible(stray),
                        "release deliveries of a changed webhook")

    def poke(self, _added: object = None) -> None:
        """New deliveries were committed: look for due work now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set; in-flight tasks are left to ``shutdown``."""
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.health.refresh()
                claimed = await self._claim()
                delay = 0.0 if claimed else await self._idle_delay()
            except StoreError as exc:
                log.error("cannot read the outbox: %s; trying again in 5s", exc)
                delay = 5.0
            if delay > 0:
                await wait_any(self._wake, stop, timeout=delay)

    async def _claim(self) -> int:
        held = frozenset().union(*(lane.held for lane in self._lanes.values()))
        open_lanes = [n for n, lane in self._lanes.items()
                      if len(lane.held) < lane.capacity and self.health.claimable(n)]
        ordered = [n for n in open_lanes if self._lanes[n].webhook.ordered]
        now = self._clock()
        claimed = 0
        for name in self.health.take_recovered() & set(open_lanes):
            # its breaker closed after an outage: the deliveries that failed in it and
            # wait in the outbox (not in this process: claimed before a restart) go now
            soon = now + first_retry_wait(self._lanes[name].webhook)
            claimed += await self._take(await self._store.claim_due(
                soon, 256, held, webhooks=[name], ordered=ordered))
        if not open_lanes:
            return claimed
        return claimed + await self._take(await self._store.claim_due(
            now, 256, held, webhooks=open_lanes, ordered=ordered))

    async def _take(self, batch: list[Delivery]) -> int:
        for delivery in batch:
            lane = self._lanes.get(delivery.webhook)
            if lane is None:
                # the webhook was removed from the config: keep the row, do not send
                await self._store.release([delivery.id])
                continue
            lane.held.add(delivery.id)
            if lane.grouper is not None:
                lane.grouper.add(delivery)  # sent with its group when the window ends
            else:
                self._start(lane, delivery)
        return len(batch)

    def _start(self, lane: WebhookLane, delivery: Delivery) -> None:
        self._grouped.track(delivery)
        self._workers.start(lane, delivery)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in a task of this sender's (cancelled by ``shutdown``)."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _idle_delay(self) -> float:
        # an ordered room waiting on a retry would otherwise look due, and poll at 20/s
        due = await self._store.next_due(
            ordered=[n for n, lane in self._lanes.items() if lane.webhook.ordered])
        if due is None:
            return self.health.cap_delay(5.0)
        return self.health.cap_delay(min(5.0, max(0.05, due - self._clock())))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the delivery stays claimed in the outbox and is retried after a restart
            log.error("delivery task failed: %s", task.exception())

    @property
    def in_flight(self) -> int:
        """Deliveries held in memory (queued, attempting, waiting to retry or grouped)."""
        return sum(len(lane.held) for lane in (*self._lanes.values(), *self._retired))

    async def shutdown(self, grace: float) -> None:
        """Let POSTs under way finish within ``grace``; cancel the rest; release claims."""
        self._closing = self._workers.closing = True
        for lane in self._lanes.values():
            if lane.grouper is not None:
                lane.grouper.close()  # its deliveries are in ``held``: released below
        held = [i for lane in (*self._lanes.values(), *self._retired) for i in lane.held]
        posting = set(self._deliverer.posting)
        if posting:
            log.info("waiting up to %.1fs for %d delivery(ies) in flight", grace, len(posting))
            await asyncio.wait(posting, timeout=grace)
        waiting = [t for t in self._tasks if not t.done()]
        for task in waiting:
            task.cancel(msg="shutting down: the delivery stays in the outbox")
        await asyncio.gather(*waiting, return_exceptions=True)
        await self._deliverer.completer.drain()
        if held:
            await self._store.release(held)
        for lane in (*self._lanes.values(), *self._retired):
            await lane.client.close()

