"""One delivery's attempts, from its start to its outcome, and their bookkeeping.

Each attempt is admitted by the webhook's breaker and runs under its ``max_in_flight``
slots and rate limit; the backoff sleeps between attempts run outside the slots, so a
failing delivery never blocks its webhook's healthy ones. Each failed attempt is
persisted before the sleep, so a restart resumes the retry budget where it stopped; a
shutdown that lands while it is being saved waits for the write (``finish_first``), so no
attempt is made twice. A 2xx is recorded in a batch (``Completer``); a spent budget or a
permanent error dead-letters the delivery.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass

from tenacity import RetryCallState

from notifier.config import Webhook
from notifier.delivery.completer import Completer
from notifier.delivery.grouping import GroupDelivery, members_of
from notifier.delivery.healthboard import HealthBoard
from notifier.delivery.lanes import BACKOFF_BASE, WebhookLane
from notifier.delivery.ratelimit import UNLIMITED
from notifier.errors import DeliveryError, DeliveryTransientError, StoreError
from notifier.events import Delivery
from notifier.store import Store
from notifier.util import tracing
from notifier.util.aio import finish_first
from notifier.util.backoff import ExponentialWait, Retry, retry_wait

__all__ = ["AttemptReport", "Deliverer", "DeliveryOutcome", "log_unrecorded"]

log = logging.getLogger("notifier.delivery")


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


def log_unrecorded(delivery: Delivery, error: Exception) -> None:
    """Say that ``delivery``'s outcome could not be saved, so it will be sent again."""
    log.error("webhook %s: cannot record the outcome of %s (%s); it will be retried",
              delivery.webhook, delivery.id, error)


def _fields(delivery: Delivery, attempt: int, status: int | None) -> dict[str, object]:
    """The structured fields of a delivery log line (see notifier.runtime.logs)."""
    return {"webhook": delivery.webhook, "event_id": delivery.event.id, "room":
            delivery.event.room, "attempt": attempt, "status": status}


class Deliverer:
    """Runs deliveries to their outcome (``deliver``) and records every step in the store
    (given grouped: see notifier.delivery.grouping); ``poke`` wakes the dispatcher."""

    def __init__(self, store: Store, health: HealthBoard, *, poke: Callable[[], None],
                 on_outcome: Callable[[DeliveryOutcome], None] | None,
                 on_attempt: Callable[[AttemptReport], None] | None,
                 clock: Callable[[], float], rng: random.Random) -> None:
        self._store, self.health, self._poke = store, health, poke
        self.on_outcome, self._on_attempt = on_outcome, on_attempt
        self._clock, self._rng = clock, rng
        self.posting: set[asyncio.Task[None]] = set()
        """The tasks whose POST is under way (a shutdown lets them finish within grace)."""
        self.completer = Completer(store.delivered)
        """2xx answers are recorded in batches (one transaction for many deliveries)."""
        self._store_retry: Retry[None] = Retry(StoreError,
                                               wait=ExponentialWait(base=0.1, cap=5.0))
        """Gives a claim back once the store works again (``release_when_possible``)."""

    def retry(self, webhook: Webhook) -> Retry[None]:
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

    async def deliver(self, lane: WebhookLane, delivery: Delivery,
                      failed: DeliveryError | None = None) -> None:
        """Attempt ``delivery`` until it is delivered or dead-lettered, every step saved;
        ``failed``: its first attempt was made (by a lane's worker) and failed so."""
        try:
            await self._deliver_once(lane, delivery, failed)
        except StoreError as exc:
            # The outcome could not be saved (a locked or full state file). Give the claim
            # back once the store works again, so the delivery is retried in this run, not
            # left claimed until a restart; a 2xx already received is then sent again under
            # the same webhook-id: a duplicate, never a loss.
            log_unrecorded(delivery, exc)
            await self.release_when_possible([delivery.id])

    async def release_when_possible(self, ids: list[str]) -> None:
        """Give the claims of ``ids`` back to the outbox, retrying while the store fails."""
        async def release(_attempt: int) -> None:
            await self._store.release(ids)

        await self._store_retry.call(release)
        self._poke()

    async def _deliver_once(self, lane: WebhookLane, delivery: Delivery,
                            failed: DeliveryError | None) -> None:
        webhook = lane.webhook
        attempt_no = delivery.attempts + 1

        async def attempt(number: int) -> None:
            nonlocal attempt_no, failed
            attempt_no = number
            if failed is not None:  # made already: its result recorded as _attempt does
                exc, failed = failed, None
                await finish_first(self.health[webhook.name].record(False, exc.status,
                                                                     probe=False))
                raise exc
            await self._attempt(lane, delivery, number)

        try:
            # numbered over restarts: the attempts an earlier run made count for the waits
            # and the budget (tenacity's stop_after_attempt sees the total)
            await lane.retry.call(attempt, first=delivery.attempts + 1, args=(lane, delivery))
            await self.completer.delivered(delivery.id)
            if self.on_outcome is not None:  # built only when someone listens
                self.on_outcome(DeliveryOutcome(delivery, True, attempt_no, None))
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
            self.report(DeliveryOutcome(delivery, False, attempt_no, exc.status, error))
        finally:
            self.finished(lane, delivery)

    def finished(self, lane: WebhookLane, delivery: Delivery) -> None:
        """``delivery`` has its outcome (saved, or given back): the lane holds it no more."""
        if isinstance(delivery, GroupDelivery):
            lane.held.difference_update(m.id for m in members_of(delivery))
        else:  # most: one id, no generator
            lane.held.discard(delivery.id)
        lane.left()
        if lane.webhook.ordered or len(lane.held) == lane.capacity // 2:
            # ordered: the room's next delivery is its queue's head now; otherwise the
            # lane has room for another batch, which may be waiting already
            self._poke()

    async def _attempt(self, lane: WebhookLane, delivery: Delivery, attempt_no: int) -> None:
        """One attempt, admitted by the webhook's breaker, its result recorded there."""
        health = self.health[lane.webhook.name]
        # closed and enabled: admitted at once, as admit() would (no coroutine to await)
        probe = False if health.admit_now() else await health.admit()
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
        if (rest := health.record_success(probe)) is not None:  # None: a steady success
            await rest

    async def _post(self, lane: WebhookLane, delivery: Delivery, attempt_no: int,
                    probe: bool) -> bool:
        """POST once; False, sending nothing, if the breaker no longer admits it."""
        slots = lane.semaphore
        if not slots.take_now():  # a free slot is taken without a coroutine
            await slots.take()
        try:
            if not self.health[lane.webhook.name].still_admits(probe):
                return False
            await self.post_in_turn(lane, delivery, attempt_no)
        finally:
            slots.release()
        return True

    def post_in_turn(self, lane: WebhookLane, delivery: Delivery, attempt_no: int,
                     task: asyncio.Task[None] | None = None) -> Coroutine[None, None, None]:
        """POST attempt ``attempt_no`` holding one of the lane's slots, in the webhook's
        rate-limit turn: taken holding the slot, so a 429's pause holds back every queued
        one. ``task`` (this one's, when not given) counts as posting meanwhile."""
        if lane.limiter is UNLIMITED:  # the POST's own coroutine: no frame around it
            return self._post_now(lane, delivery, attempt_no, task)
        return self._post_limited(lane, delivery, attempt_no, task)

    async def _post_limited(self, lane: WebhookLane, delivery: Delivery, attempt_no: int,
                            task: asyncio.Task[None] | None) -> None:
        async with lane.limiter.turn():
            await self._post_now(lane, delivery, attempt_no, task)

    async def _post_now(self, lane: WebhookLane, delivery: Delivery, attempt_no: int,
                        task: asyncio.Task[None] | None) -> None:
        """The POST, counted in ``posting``; its report to the listeners after it."""
        if task is None:
            task = asyncio.current_task()
            assert task is not None
        self.posting.add(task)
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
            self.posting.discard(task)
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

    def report(self, outcome: DeliveryOutcome) -> None:
        """Tell the outcome listener, if any, what became of a delivery."""
        if self.on_outcome is not None:
            self.on_outcome(outcome)

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
