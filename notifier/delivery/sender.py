"""POST deliveries to their webhooks, retrying with tenacity, recording every outcome.

The dispatcher claims due deliveries from the store, per webhook and up to a cap, and
runs each in its own task; the deliveries a page of this process adds for a lane with
room are handed over at its commit instead (``reserve``/``adopt``: added claimed, started
from memory, never claimed or decoded again). A delivery's attempts run under the webhook's
``max_in_flight`` semaphore; the backoff sleeps between attempts run outside it, so a
failing delivery never blocks its webhook's healthy ones, and no webhook blocks another
(each has its own connection pool). Each failed attempt is persisted before the sleep,
so a restart resumes the retry budget where it stopped; a shutdown that lands while it
is being saved waits for the write (``finish_first``), so no attempt is made twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tenacity import RetryCallState

from notifier.config import Webhook
from notifier.delivery.completer import Completer
from notifier.delivery.grouping import GroupedStore, Grouper, members_of
from notifier.delivery.health import HealthBoard
from notifier.delivery.ratelimit import RateLimiter, Slots, Unlimited, limiter_for
from notifier.delivery.transport import Transport, TransportFactory, open_transport
from notifier.errors import DeliveryError, DeliveryTransientError, StoreError
from notifier.events import Delivery
from notifier.store import Store
from notifier.util import tracing
from notifier.util.aio import finish_first, wait_any
from notifier.util.backoff import ExponentialWait, Retry, retry_wait
from notifier.util.schedule import JITTER

__all__ = ["AttemptReport", "DeliveryOutcome", "Reservation", "Sender", "first_retry_wait"]

log = logging.getLogger("notifier.delivery")

#: Deliveries one webhook may hold in memory (attempting or waiting to retry).
PER_WEBHOOK_BACKLOG = 512
#: A lane that drains to this many held deliveries claims more at once (not at the next
#: idle poll), so a backlog larger than the lane streams without pauses.
REFILL_AT = PER_WEBHOOK_BACKLOG // 2
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


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """One POST attempt: reported to listeners (metrics, the status page)."""

    delivery: Delivery
    attempt: int
    status: int | None
    """The HTTP status, or None when no answer came (network error, timeout)."""
    error: str
    seconds: float


def first_retry_wait(webhook: Webhook) -> float:
    """The longest a delivery waits after its first failure (its row is due by then)."""
    if webhook.retry_schedule:
        return webhook.retry_schedule[0] * (1 + JITTER)
    return min(webhook.max_backoff, BACKOFF_BASE)


def _fields(delivery: Delivery, attempt: int, status: int | None) -> dict[str, object]:
    """The structured fields of a delivery log line (see notifier.runtime.logs)."""
    return {"webhook": delivery.webhook, "event_id": delivery.event.id, "room":
            delivery.event.room, "attempt": attempt, "status": status}


@dataclass
class _WebhookLane:
    webhook: Webhook
    client: Transport
    semaphore: Slots
    retry: Retry[None]
    """The webhook's retry policy, built once (tenacity's retry, stop and wait objects)."""
    limiter: RateLimiter | Unlimited = field(default_factory=Unlimited)
    grouper: Grouper | None = None
    held: set[str] = field(default_factory=set)
    reserved: int = 0
    """Backlog room promised to pages being committed (``Sender.reserve``)."""

    def room(self) -> int:
        """How many more deliveries may start here the moment they are committed: none
        when ordered (a room's head is the store's to pick) or grouped; else up to the cap."""
        if self.webhook.ordered or self.grouper is not None:
            return 0
        return max(0, PER_WEBHOOK_BACKLOG - len(self.held) - self.reserved)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Room held in lanes for one page being committed: the deliveries ``ids`` are added
    claimed by this process and handed to ``Sender.adopt`` (no claim query)."""

    ids: frozenset[str]
    lanes: dict[str, tuple[_WebhookLane, int]]
    """webhook -> (its lane when reserved, how many of ``ids`` go to it)."""


class Sender:
    """Owns one transport per webhook (built by ``transport``: the webhook's ``http_client``
    unless given another, see notifier.delivery.transport) and the dispatch loop."""

    def __init__(self, webhooks: Mapping[str, Webhook], store: Store, *,
                 on_outcome: Callable[[DeliveryOutcome], None] | None = None,
                 on_attempt: Callable[[AttemptReport], None] | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 ops_webhook: str | None = None,
                 transport: TransportFactory = open_transport) -> None:
        self.health = HealthBoard(webhooks, store, clock=clock, ops_webhook=ops_webhook,
                                  on_enqueued=self.poke, on_recovered=self.poke)
        self._grouped = GroupedStore(store)
        self._store: Store = self._grouped  # a Store: it delegates what it does not expand
        self._on_outcome = on_outcome
        self._on_attempt = on_attempt
        self._clock = clock
        self._rng = rng or random.Random()
        self._transport = transport
        """Builds each webhook's Transport: its ``http_client``'s unless told otherwise."""
        self._lanes = {name: self._new_lane(w) for name, w in webhooks.items()}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._retired: list[_WebhookLane] = []
        """Lanes a reload replaced or removed: closed (and released) at shutdown."""
        self._posting: set[asyncio.Task[None]] = set()
        self._completer = Completer(self._store.delivered)
        """2xx answers are recorded in batches (one transaction for many deliveries)."""
        self._store_retry: Retry[None] = Retry(StoreError,
                                               wait=ExponentialWait(base=0.1, cap=5.0))
        """Gives a claim back once the store works again (``_release_when_possible``)."""
        self._closing = False
        """Set by ``shutdown``: pages committed from then on are not handed over."""

    def _new_lane(self, webhook: Webhook) -> _WebhookLane:
        lane = _WebhookLane(webhook, self._transport(webhook),
                            Slots(webhook.max_in_flight), self._retry(webhook),
                            limiter_for(webhook.rate_limit))
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
                self._retired.append(_WebhookLane(lane.webhook, lane.client, lane.semaphore,
                                                  lane.retry))
                lane.client = self._transport(w)
                lane.retry = self._retry(w)
                if w.max_in_flight != lane.webhook.max_in_flight:
                    lane.semaphore = Slots(w.max_in_flight)
                if w.rate_limit != lane.webhook.rate_limit:
                    lane.limiter = limiter_for(w.rate_limit)
                lane.webhook = w
        self.poke()

    def reserve(self, deliveries: Sequence[Delivery]) -> Reservation | None:
        """Room for the deliveries of a page that can start as soon as they are committed,
        in page order, each lane up to its room (``_WebhookLane.room``; breaker closed or
        probing, not disabled), reserved so that concurrent pages keep it under its cap;
        None when there is none. The caller commits them claimed (``Store.commit_page``'s
        ``claimed``), then hands the result to ``adopt``, also when the commit failed."""
        if self._closing:
            return None
        room: dict[str, int] = {}  # webhook -> room left in its lane as the page is read
        first: dict[str, int] = {}
        ids: set[str] = set()
        for delivery in deliveries:
            left = room.get(delivery.webhook)
            if left is None:
                left = first[delivery.webhook] = self._room_in(delivery.webhook)
            if left > 0:
                ids.add(delivery.id)
                left -= 1
            room[delivery.webhook] = left
        if not ids:
            return None
        lanes: dict[str, tuple[_WebhookLane, int]] = {}
        for name, start in first.items():
            if (taken := start - room[name]) > 0:
                lane = self._lanes[name]
                lane.reserved += taken
                lanes[name] = (lane, taken)
        return Reservation(frozenset(ids), lanes)

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
            task = asyncio.create_task(self._release_when_possible(stray),
                                       name="release deliveries of a changed webhook")
            self._tasks.add(task)
            task.add_done_callback(self._finished)

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
                      if len(lane.held) < PER_WEBHOOK_BACKLOG and self.health.claimable(n)]
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

    def _start(self, lane: _WebhookLane, delivery: Delivery) -> None:
        self._grouped.track(delivery)
        task = asyncio.create_task(self._deliver(lane, delivery), name=f"deliver {delivery.id}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _idle_delay(self) -> float:
        # an ordered room waiting on a retry would otherwise look due, and poll at 20/s
        due = await self._store.next_due(
            ordered=[n for n, lane in self._lanes.items() if lane.webhook.ordered])
        if due is None:
            return self.health.cap_delay(5.0)
        return self.health.cap_delay(min(5.0, max(0.05, due - self._clock())))

    async def _deliver(self, lane: _WebhookLane, delivery: Delivery) -> None:
        try:
            await self._deliver_once(lane, delivery)
        except StoreError as exc:
            # The outcome could not be saved (a locked or full state file). Give the claim
            # back once the store works again, so the delivery is retried in this run, not
            # left claimed until a restart; a 2xx already received is then sent again under
            # the same webhook-id: a duplicate, never a loss.
            log.error("webhook %s: cannot record the outcome of %s (%s); it will be retried",
                      delivery.webhook, delivery.id, exc)
            await self._release_when_possible([delivery.id])

    async def _release_when_possible(self, ids: list[str]) -> None:
        async def release(_attempt: int) -> None:
            await self._store.release(ids)

        await self._store_retry.call(release)
        self.poke()

    async def _deliver_once(self, lane: _WebhookLane, delivery: Delivery) -> None:
        webhook = lane.webhook
        attempt_no = delivery.attempts + 1

        async def attempt(number: int) -> None:
            nonlocal attempt_no
            attempt_no = number
            await self._attempt(lane, delivery, number)

        try:
            # numbered over restarts: the attempts an earlier run made count for the waits
            # and the budget (tenacity's stop_after_attempt sees the total)
            await lane.retry.call(attempt, first=delivery.attempts + 1, args=(lane, delivery))
            await self._completer.delivered(delivery.id)
            if self._on_outcome is not None:  # built only when someone listens
                self._on_outcome(DeliveryOutcome(delivery, True, attempt_no, None))
        except DeliveryError as exc:
            if self.health.is_disabled(webhook.name):  # disabled: kept in the outbox, unsent
                await self._store.release([delivery.id])
                return
            error = lane.client.scrub(str(exc))  # stored and shown: never a URL or secret
            # the attempts were made: their count is saved even if a shutdown cancels us here
            await finish_first(self._store.dead_letter(delivery.id, attempt_no, exc.status,
                                                       error))
            log.error("webhook %s: delivery %s dead-lettered after %d attempt(s); last: %s",
                      webhook.name, delivery.id, attempt_no, error,
                      extra=_fields(delivery, attempt_no, exc.status))
            self._report(DeliveryOutcome(delivery, False, attempt_no, exc.status, error))
        finally:
            lane.held.difference_update(m.id for m in members_of(delivery))
            if webhook.ordered or len(lane.held) == REFILL_AT:
                # ordered: the room's next delivery is its queue's head now; otherwise the
                # lane has room for another batch, which may be waiting already
                self.poke()

    def _retry(self, webhook: Webhook) -> Retry[None]:
        """A webhook's retry policy (built with its lane, rebuilt when a reload changes it)."""
        return Retry(
            DeliveryTransientError,
            wait=retry_wait(webhook.retry_schedule, base=BACKOFF_BASE, cap=webhook.max_backoff,
                            offset=0, rng=self._rng),
            attempts=max(1, webhook.max_attempts),
            before_sleep=self._persist_failure,
            # the pause ends early when the breaker closes after the outage it failed in
            sleep=self.health[webhook.name].retry_pause,
        )

    async def _attempt(self, lane: _WebhookLane, delivery: Delivery, attempt_no: int) -> None:
        """One attempt, admitted by the webhook's breaker, its result recorded there."""
        health = self.health[lane.webhook.name]
        probe = await health.admit()  # waits while the breaker is open; raises if disabled
        try:
            while not await self._post(lane, delivery, attempt_no, probe):
                # the breaker opened while this attempt queued for a slot: it waits again,
                # so a receiver that went down sees the probe, not the queue behind it
                probe = await health.admit()
        except DeliveryError as exc:
            # saved to its end (a shutdown meanwhile cancels the task after it): the attempt
            # was made, and the reschedule that counts it comes next
            await finish_first(health.record(False, exc.status, probe=probe))
            raise
        except BaseException:
            health.abandon(probe)
            raise
        await health.record(True, None, probe=probe)

    async def _post(self, lane: _WebhookLane, delivery: Delivery, attempt_no: int,
                    probe: bool) -> bool:
        """POST once; False, sending nothing, if the breaker no longer admits it."""
        async with lane.semaphore:
            if not self.health[lane.webhook.name].still_admits(probe):
                return False
            # the turn is taken holding a slot, so a 429's pause holds back every queued one
            async with lane.limiter.turn():
                await self._post_now(lane, delivery, attempt_no)
        return True

    async def _post_now(self, lane: _WebhookLane, delivery: Delivery, attempt_no: int) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._posting.add(task)
        started = time.monotonic()
        status: int | None = None
        error = ""
        try:
            with tracing.attempt(delivery, attempt_no) as span:
                status = await lane.client.post(delivery)
                span.answered(status)
        except DeliveryError as exc:
            status, error = exc.status, str(exc)
            raise
        finally:
            self._posting.discard(task)
            if self._on_attempt is not None or log.isEnabledFor(logging.DEBUG):
                self._report_attempt(AttemptReport(delivery, attempt_no, status, error,
                                                   time.monotonic() - started))

    async def _persist_failure(self, state: RetryCallState) -> None:
        """tenacity's before_sleep: the failed attempt and when the next is due, saved."""
        lane, delivery = state.args
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        attempts = state.attempt_number  # counted over restarts (Retry.call's ``first``)
        status = getattr(exc, "status", None)
        error = lane.client.scrub(str(exc))  # stored and logged: never a URL or secret
        log.warning("webhook %s: attempt %d for %s failed (%s); retrying in %.1fs",
                    delivery.webhook, attempts, delivery.id, error, sleep,
                    extra=_fields(delivery, attempts, status))
        # a shutdown in this write must not lose the count: the next run would make this
        # attempt again, one beyond max_attempts (finish_first: cancelled after the write)
        await finish_first(self._store.reschedule(delivery.id, attempts, self._clock() + sleep,
                                                  status, error))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the delivery stays claimed in the outbox and is retried after a restart
            log.error("delivery task failed: %s", task.exception())

    def _report(self, outcome: DeliveryOutcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _report_attempt(self, report: AttemptReport) -> None:
        if log.isEnabledFor(logging.DEBUG):  # its fields cost more than the POST's own work
            self._log_attempt(report)
        if self._on_attempt is not None:
            self._on_attempt(report)

    def _log_attempt(self, report: AttemptReport) -> None:
        log.debug("webhook %s: attempt %d for %s: %s in %.0fms", report.delivery.webhook,
                  report.attempt, report.delivery.id, report.status or report.error or "cancelled",
                  report.seconds * 1000, extra={**_fields(report.delivery, report.attempt,
                                                           report.status),
                                                "duration": round(report.seconds, 6)})

    @property
    def in_flight(self) -> int:
        """Deliveries held in memory (attempting or waiting to retry)."""
        return len(self._tasks)

    async def shutdown(self, grace: float) -> None:
        """Let POSTs under way finish within ``grace``; cancel the rest; release claims."""
        self._closing = True
        for lane in self._lanes.values():
            if lane.grouper is not None:
                lane.grouper.close()  # its deliveries are in ``held``: released below
        held = [i for lane in (*self._lanes.values(), *self._retired) for i in lane.held]
        posting = set(self._posting)
        if posting:
            log.info("waiting up to %.1fs for %d delivery(ies) in flight", grace, len(posting))
            await asyncio.wait(posting, timeout=grace)
        waiting = [t for t in self._tasks if not t.done()]
        for task in waiting:
            task.cancel(msg="shutting down: the delivery stays in the outbox")
        await asyncio.gather(*waiting, return_exceptions=True)
        await self._completer.drain()
        if held:
            await self._store.release(held)
        for lane in (*self._lanes.values(), *self._retired):
            await lane.client.close()

