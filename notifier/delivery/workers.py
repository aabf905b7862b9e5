"""A webhook lane's workers: long-lived tasks that take its held deliveries one after
another, so a delivery that goes well costs no task, future or retry loop of its own.

Each lane runs up to ``max_in_flight`` workers, started as deliveries arrive and ended
when its queue is empty. A worker makes a delivery's first attempt itself when it may go
at once (breaker closed, webhook enabled, a slot free: the checks ``Deliverer`` makes, in
the same order) and queues its 2xx for the next batch (``Completer.add``: the outcome is
reported, and the lane lets the delivery go, once the batch is written). A delivery that
must wait (an open breaker, slots taken by retries) or whose attempt failed leaves the
worker instead: the task goes on with it as a delivery task (``Deliverer.deliver``: the
breaker's admission, the failure saved before the backoff sleep, the retries) and a new
worker takes the queue, so a failing delivery never blocks its webhook's healthy ones.

A shutdown (``closing``) lets a worker's POST under way finish (it is in
``Deliverer.posting``); the worker then takes no more, and the queued deliveries' claims
are given back with the rest the lanes hold.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from notifier.delivery.attempts import Deliverer, DeliveryOutcome, log_unrecorded
from notifier.delivery.lanes import WebhookLane
from notifier.errors import DeliveryError, StoreError
from notifier.events import Delivery

__all__ = ["LaneWorkers"]

log = logging.getLogger("notifier.delivery")

#: ``_first_attempt``'s answer when the delivery could not go at once (nothing was sent).
_WAIT = "wait"

Spawn = Callable[[Coroutine[Any, Any, None], str], object]


class LaneWorkers:
    """Starts deliveries on their lanes' workers; ``spawn`` runs a coroutine in a task the
    sender tracks (cancelled at shutdown)."""

    def __init__(self, deliverer: Deliverer, spawn: Spawn) -> None:
        self._deliverer, self._spawn = deliverer, spawn
        self.closing = False
        """Set at shutdown: workers take no more deliveries."""

    def start(self, lane: WebhookLane, delivery: Delivery) -> None:
        """Queue a held ``delivery`` on its lane, with a new worker while the lane has
        fewer than its ``max_in_flight``."""
        lane.queue.append(delivery)
        if lane.workers < lane.webhook.max_in_flight:
            self._add_worker(lane)

    def _add_worker(self, lane: WebhookLane) -> None:
        lane.workers += 1
        self._spawn(self._work(lane), f"deliver to {lane.webhook.name}")

    async def _work(self, lane: WebhookLane) -> None:
        me: asyncio.Task[None] = asyncio.current_task()  # type: ignore[assignment]
        working = True
        try:
            while lane.queue and not self.closing:
                delivery = lane.queue.popleft()
                result = await self._first_attempt(lane, delivery, me)
                if result is None:
                    continue  # delivered: recorded with the next batch
                # it must wait or retry: this task goes on with it alone, and another
                # worker takes the queue
                working = False
                lane.workers -= 1
                if lane.queue:
                    self._add_worker(lane)
                await self._deliverer.deliver(
                    lane, delivery, result if isinstance(result, DeliveryError) else None)
                return
        finally:
            if working:
                lane.workers -= 1
                if lane.queue and not self.closing:  # an error ended it: the queue goes on
                    self._add_worker(lane)

    async def _first_attempt(self, lane: WebhookLane, delivery: Delivery,
                             me: asyncio.Task[None]) -> DeliveryError | str | None:
        """The delivery's next attempt, when it may go at once: None once answered 2xx
        (its completion queued), its DeliveryError when it failed; ``_WAIT``, sending
        nothing, when it must wait for the breaker or a slot."""
        deliverer = self._deliverer
        health = deliverer.health[lane.webhook.name]
        slots = lane.semaphore
        # as Deliverer._attempt and _post: admitted by a closed breaker, then a slot
        if not health.admit_now() or not slots.take_now():
            return _WAIT
        number = delivery.attempts + 1
        try:
            await deliverer.post_in_turn(lane, delivery, number, me)
        except DeliveryError as exc:
            return exc  # recorded by Deliverer.deliver, which goes on from it
        except BaseException:
            deliverer.finished(lane, delivery)  # as Deliverer.deliver's ``finally`` does
            raise
        finally:
            slots.release()
        rest = health.record_success(False)  # None: a steady success
        # the 2xx is queued for the outbox first: a shutdown that cancels this task while
        # the breaker's state is saved must not leave the answered delivery to be sent again
        deliverer.completer.add(delivery.id,
                                functools.partial(self._recorded, lane, delivery, number))
        if rest is not None:
            await rest
        return None

    def _recorded(self, lane: WebhookLane, delivery: Delivery, attempts: int,
                  error: Exception | None) -> None:
        """The batch holding ``delivery``'s 2xx was written (or failed with ``error``)."""
        deliverer = self._deliverer
        if error is None:
            try:
                if deliverer.on_outcome is not None:  # built only when someone listens
                    deliverer.on_outcome(DeliveryOutcome(delivery, True, attempts, None))
            finally:
                deliverer.finished(lane, delivery)
            return
        deliverer.finished(lane, delivery)
        if not isinstance(error, StoreError):
            # as a delivery task's error: the row stays claimed until a restart
            log.error("delivery task failed: %s", error)
            return
        # as Deliverer.deliver: the claim is given back once the store works again (a
        # shutdown gives back every held claim itself)
        log_unrecorded(delivery, error)
        if not self.closing:
            self._spawn(deliverer.release_when_possible([delivery.id]),
                        "release a delivery not recorded")
