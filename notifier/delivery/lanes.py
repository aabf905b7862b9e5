"""A webhook's lane in the sender: its transport, limits and retry policy, and the
deliveries it holds in memory; and the room pages reserve in lanes for the hand-off.

A lane holds at most ``PER_WEBHOOK_BACKLOG`` deliveries (attempting or waiting to retry),
so a backlog never grows memory without bound: the rest waits in the outbox.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from notifier.config import Webhook
from notifier.delivery.grouping import Grouper
from notifier.delivery.ratelimit import UNLIMITED, RateLimiter, Slots, Unlimited
from notifier.delivery.transport import Transport
from notifier.events import Delivery
from notifier.util.backoff import Retry
from notifier.util.schedule import JITTER

__all__ = ["BACKOFF_BASE", "PER_WEBHOOK_BACKLOG", "REFILL_AT", "Reservation", "WebhookLane",
           "first_retry_wait"]

#: Deliveries one webhook may hold in memory (attempting or waiting to retry).
PER_WEBHOOK_BACKLOG = 512
#: A lane that drains to this many held deliveries claims more at once (not at the next
#: idle poll), so a backlog larger than the lane streams without pauses.
REFILL_AT = PER_WEBHOOK_BACKLOG // 2
#: First backoff step; grows to the webhook's max_backoff.
BACKOFF_BASE = 1.0


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
    lanes: dict[str, tuple[WebhookLane, int]]
    """webhook -> (its lane when reserved, how many of ``ids`` go to it)."""
