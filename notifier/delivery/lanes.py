"""A webhook's lane in the sender: its transport, limits and retry policy, and the
deliveries it holds in memory; and the room pages reserve in lanes for the hand-off.

A lane holds at most its ``capacity`` deliveries (attempting or waiting to retry; at
least ``PER_WEBHOOK_BACKLOG``, and two pages: ``lane_capacity``), so a backlog never grows
memory without bound: the rest waits in Roomlio (a page waits for room before its commit,
notifier.delivery.backpressure) or in the outbox.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from notifier.config import Webhook
from notifier.delivery.grouping import Grouper
from notifier.delivery.ratelimit import UNLIMITED, RateLimiter, Slots, Unlimited
from notifier.delivery.transport import Transport
from notifier.events import Delivery
from notifier.util.backoff import Retry
from notifier.util.schedule import JITTER

__all__ = ["BACKOFF_BASE", "PER_WEBHOOK_BACKLOG", "Reservation", "WebhookLane", "first_retry_wait",
           "lane_capacity"]

#: The fewest deliveries one webhook may hold in memory (attempting or waiting to retry).
PER_WEBHOOK_BACKLOG = 512
#: First backoff step; grows to the webhook's max_backoff.
BACKOFF_BASE = 1.0


def lane_capacity(page_size: int) -> int:
    """A lane's capacity when pages hold up to ``page_size`` messages: room for two pages,
    so that one page can be committed into it while the one before is being delivered."""
    return max(PER_WEBHOOK_BACKLOG, 2 * page_size)


def first_retry_wait(webhook: Webhook) -> float:
    """The longest a delivery waits after its first failure (its row is due by then)."""
    if webhook.retry_schedule:
        return webhook.retry_schedule[0] * (1 + JITTER)
    return min(webhook.max_backoff, BACKOFF_BASE)


@dataclass
class WebhookLane:
    """One webhook's part of the sender: what its attempts go through, what it holds."""

    webhook: Webhook
    client: Transport
    semaphore: Slots
    retry: Retry[None]
    """The webhook's retry policy, built once (tenacity's retry, stop and wait objects)."""
    limiter: RateLimiter | Unlimited = UNLIMITED
    grouper: Grouper | None = None
    held: set[str] = field(default_factory=set)
    queue: deque[Delivery] = field(default_factory=deque)
    """Held deliveries no worker has taken yet (notifier.delivery.workers)."""
    workers: int = 0
    """Worker tasks taking from ``queue``: at most the webhook's ``max_in_flight``."""
    reserved: int = 0
    """Backlog room promised to pages being committed (``Sender.reserve``)."""
    capacity: int = PER_WEBHOOK_BACKLOG
    """The most deliveries ``held`` at once. Drained to half of it, the lane claims more
    at once (not at the next idle poll), so a backlog in the outbox streams without pauses."""
    delivered: int = 0
    """Deliveries that have left ``held`` so far: what a page waiting for room sees as
    the lane's progress."""
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    """Pages waiting for room here (notifier.delivery.backpressure)."""
    wanted: int = 0
    """The least room one of ``waiters`` waits for."""
    congested_until: float = 0.0
    """Until then (the loop's clock), no page waits for room here: the lane stopped
    draining while one did."""

    @property
    def hands_off(self) -> bool:
        """Whether deliveries may start here the moment they are committed: not when
        ordered (a room's head is the store's to pick) or grouped."""
        return not self.webhook.ordered and self.grouper is None

    def room(self) -> int:
        """How many more deliveries may start here the moment they are committed: none
        unless it ``hands_off``; else up to the cap."""
        if not self.hands_off:
            return 0
        return max(0, self.capacity - len(self.held) - self.reserved)

    def left(self) -> None:
        """A delivery left ``held``: count it, and wake the pages waiting for room once
        there is as much as the least of them needs (each looks again for itself)."""
        self.delivered += 1
        if self.waiters and self.room() >= self.wanted:
            waiters, self.waiters = self.waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def wait_for(self, need: int, waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` when the lane has room for ``need`` deliveries (or sooner:
        when it has room for another waiter's)."""
        self.wanted = min(self.wanted, need) if self.waiters else need
        self.waiters.append(waiter)

    def unwait(self, waiter: asyncio.Future[None]) -> None:
        """``waiter`` waits here no more (woken by another lane, or gave up)."""
        if waiter in self.waiters:
            self.waiters.remove(waiter)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Room held in lanes for one page being committed: the deliveries ``ids`` are added
    claimed by this process and handed to ``Sender.adopt`` (no claim query)."""

    ids: frozenset[str]
    lanes: dict[str, tuple[WebhookLane, int]]
    """webhook -> (its lane when reserved, how many of ``ids`` go to it)."""
