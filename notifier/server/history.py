"""The last hour behind the status page's charts: one-minute buckets in fixed rings, in memory.

Pure, like the board: the hooks count into the bucket of the current minute, the listener
adds the store's outbox depth and dead letters when it reads them, and ``snapshot`` turns
the rings into the lists ``/api/status`` returns, oldest minute first. Memory is bounded
whatever runs: a ring has ``MINUTES`` buckets and reuses the oldest once its minute has
left the window; the first ``room_limit`` rooms of the config (``server.room_metrics_limit``,
at most ``ROOM_LIMIT``) have a ring each, every room counts in the all-rooms ring, and at
most ``WEBHOOK_LIMIT`` webhooks have one. Latencies go into a log-scale sketch of bounded
size, so a p95 costs neither a list of every sample nor more than ~2% of accuracy. Nothing
is written to disk: the history starts empty at every start, and the page says so.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from notifier.delivery.sender import AttemptReport, DeliveryOutcome
from notifier.errors import NotifierError

__all__ = ["MINUTES", "ROOM_LIMIT", "History", "Ring", "Sketch"]

#: Buckets per ring, and the seconds each covers: an hour in minutes.
MINUTES = 60
WIDTH = 60.0
#: Rooms whose own charts /api/status returns (those with the most errors first).
CHART_ROOMS = 12
#: Rooms with a ring of their own at most, whatever ``server.room_metrics_limit`` says: each
#: /api/status read ranks them all by their failed polls.
ROOM_LIMIT = 1000
#: Webhooks with a history (the configured ones; a reload may add more, up to this).
WEBHOOK_LIMIT = 100
#: The sketch's bins grow by this ratio: a quantile is within (G-1)/(G+1), about 2%.
GAMMA = 1.04
_LOG_GAMMA = math.log(GAMMA)
#: Latencies are clamped to this range, so a sketch has at most ~520 bins.
MIN_SECONDS, MAX_SECONDS = 0.001, 7 * 86400.0

T = TypeVar("T")


class Ring(Generic[T]):
    """A fixed number of consecutive time buckets, each created by ``make`` when first used
    in its minute; a bucket whose minute has left the window is replaced, never kept."""

    __slots__ = ("_make", "_slots", "_stamps", "_width")

    def __init__(self, make: Callable[[], T], *, buckets: int = MINUTES,
                 width: float = WIDTH) -> None:
        self._make, self._width = make, width
        self._stamps = [-1] * buckets
        self._slots: list[T | None] = [None] * buckets

    def at(self, t: float) -> T | None:
        """The bucket of time ``t``; None when ``t`` is older than what the ring now holds
        in its place (the clock stepped back by more than the window)."""
        index = int(t // self._width)
        slot = index % len(self._stamps)
        stamp = self._stamps[slot]
        if stamp == index:
            return self._slots[slot]
        if stamp > index:
            return None
        item = self._make()
        self._stamps[slot], self._slots[slot] = index, item
        return item

    def window(self, now: float) -> list[T | None]:
        """Every bucket of the window ending with ``now``'s, oldest first; None for a
        minute in which nothing was recorded."""
        last, size = int(now // self._width), len(self._stamps)
        return [self._slots[i % size] if self._stamps[i % size] == i else None
                for i in range(last - size + 1, last + 1)]

    def recent(self, now: float) -> Iterator[T]:
        """The buckets of the window ending with ``now``'s, in no order (cheaper than
        ``window`` when only a total is wanted)."""
        last = int(now // self._width)
        first = last - len(self._stamps)
        for stamp, item in zip(self._stamps, self._slots, strict=True):
            if first < stamp <= last and item is not None:
                yield item


class Sketch:
    """Latencies on a log scale (bin i holds (GAMMA^(i-1), GAMMA^i] seconds), for quantiles
    within about 2% of the exact ones at a bounded size."""

    __slots__ = ("bins", "count")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.count = 0

    def add(self, seconds: float) -> None:
        """Count one latency."""
        clamped = min(max(seconds, MIN_SECONDS), MAX_SECONDS)
        index = math.ceil(math.log(clamped) / _LOG_GAMMA)
        self.bins[index] = self.bins.get(index, 0) + 1
        self.count += 1

    def merge(self, other: Sketch) -> None:
        """Add every latency of ``other`` to this one."""
        for index, count in other.bins.items():
            self.bins[index] = self.bins.get(index, 0) + count
        self.count += other.count

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile (0.95: p95) in seconds; None when empty."""
        rank, seen = max(1, math.ceil(q * self.count)), 0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if seen >= rank:
                # the bin's midpoint in relative terms: off by at most (G-1)/(G+1)
                return 2 * GAMMA ** index / (GAMMA + 1)
        return None


@dataclass(slots=True)
class WebhookMinute:
    """One webhook's minute: 2xx outcomes, failed attempts, dead letters, latencies."""

    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    latency: Sketch = field(default_factory=Sketch)


@dataclass(slots=True)
class RoomMinute:
    """One room's (or all rooms') minute: polls, and how many of them failed."""

    polls: int = 0
    errors: int = 0


@dataclass(slots=True)
class StoreMinute:
    """The store's minute: the deepest outbox seen, the last dead-letter count seen."""

    outbox: int | None = None
    dead_letters: int | None = None


class History:
    """Collects what the hooks report, minute by minute, for the last hour."""

    def __init__(self, rooms: Iterable[str], webhooks: Iterable[str], *, room_limit: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.started = clock()
        """When this history began (the process's listener started): nothing before."""
        tracked = list(rooms)[:min(room_limit, ROOM_LIMIT)]
        self.rooms = {name: Ring(RoomMinute) for name in tracked}
        self.all_rooms = Ring(RoomMinute)
        self.webhooks = {name: Ring(WebhookMinute) for name in list(webhooks)[:WEBHOOK_LIMIT]}
        self.store = Ring(StoreMinute)

    # hooks

    def on_poll(self, room: str, _seen: int) -> None:
        self._room(room, error=False)

    def on_poll_failed(self, room: str, _exc: NotifierError) -> None:
        self._room(room, error=True)

    def _room(self, room: str, *, error: bool) -> None:
        now = self._clock()
        ring = self.rooms.get(room)
        for bucket in (self.all_rooms.at(now), ring.at(now) if ring else None):
            if bucket is not None:
                bucket.polls += 1
                bucket.errors += error

    def on_attempt(self, report: AttemptReport) -> None:
        ok = report.status is not None and 200 <= report.status < 300
        if ok or (report.status is None and not report.error):
            return  # a success is counted by its outcome; no answer and no error: cancelled
        bucket = self._webhook(report.delivery.webhook)
        if bucket is not None:
            bucket.failed += 1

    def on_outcome(self, outcome: DeliveryOutcome) -> None:
        bucket = self._webhook(outcome.delivery.webhook)
        if bucket is None:
            return
        if outcome.ok:
            bucket.delivered += 1
            # as notifier_delivery_latency_seconds: detection of the message to its 2xx
            bucket.latency.add(self._clock() - outcome.delivery.event.detected_at)
        else:
            bucket.dead_lettered += 1

    def _webhook(self, name: str) -> WebhookMinute | None:
        ring = self.webhooks.get(name)
        if ring is None and len(self.webhooks) < WEBHOOK_LIMIT:
            ring = self.webhooks[name] = Ring(WebhookMinute)
        return ring.at(self._clock()) if ring is not None else None

    def record_store(self, outbox: int | None, dead_letters: int | None) -> None:
        """What the store said just now (None: not read)."""
        bucket = self.store.at(self._clock())
        if bucket is None:
            return
        if outbox is not None:
            bucket.outbox = max(outbox, bucket.outbox or 0)
        if dead_letters is not None:
            bucket.dead_letters = dead_letters

    # the view

    def snapshot(self, *, rooms_shown: int = CHART_ROOMS) -> dict[str, Any]:
        """The last hour as plain lists, oldest minute first, the current minute last."""
        now = self._clock()
        store = self.store.window(now)
        return {
            "bucket_seconds": WIDTH, "buckets": MINUTES, "now": now, "started": self.started,
            "store": {"outbox": [b.outbox if b else None for b in store],
                      "dead_letters": [b.dead_letters if b else None for b in store]},
            "webhooks": [_webhook_series(name, ring.window(now))
                         for name, ring in self.webhooks.items()],
            "all_rooms": _room_series("", self.all_rooms.window(now)),
            "rooms_tracked": len(self.rooms),
            "rooms": self._worst_rooms(now, rooms_shown),
        }

    def _worst_rooms(self, now: float, shown: int) -> list[dict[str, Any]]:
        """The ``shown`` rooms with the most failed polls in the window (config order among
        equals); only those are turned into lists."""
        errors = [(-sum(b.errors for b in ring.recent(now)), i, name)
                  for i, (name, ring) in enumerate(self.rooms.items())]
        return [_room_series(name, self.rooms[name].window(now))
                for _, _, name in heapq.nsmallest(shown, errors)]


def _webhook_series(name: str, window: list[WebhookMinute | None]) -> dict[str, Any]:
    hour = Sketch()
    for bucket in window:
        if bucket is not None:
            hour.merge(bucket.latency)
    return {
        "webhook": name,
        "delivered": [b.delivered if b else 0 for b in window],
        "failed": [b.failed if b else 0 for b in window],
        "dead_lettered": [b.dead_lettered if b else 0 for b in window],
        "p95": [_rounded(b.latency.quantile(0.95)) if b else None for b in window],
        "p95_hour": _rounded(hour.quantile(0.95)),
    }


def _room_series(name: str, window: list[RoomMinute | None]) -> dict[str, Any]:
    return {"room": name, "polls": [b.polls if b else 0 for b in window],
            "errors": [b.errors if b else 0 for b in window]}


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)
