"""The Prometheus metrics: one registry per running service, fed by the service's hooks.

Label cardinality is capped for deployments with thousands of rooms: only the first
``server.room_metrics_limit`` rooms of the config get their own ``room`` label; the others
are summed as ``room="_other"`` in counters and are left out of the per-room gauges, which
the ``notifier_rooms_*`` aggregates (max lag, oldest poll) cover.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from notifier import __version__
from notifier.config import ServerSettings
from notifier.delivery.sender import AttemptReport, DeliveryOutcome
from notifier.errors import NotifierError
from notifier.events import Delivery

__all__ = ["BREAKER_VALUES", "CONTENT_TYPE", "OTHER_ROOMS", "Metrics", "RoomView", "error_code",
           "status_class"]

OTHER_ROOMS = "_other"
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
CONTENT_TYPE = CONTENT_TYPE_LATEST
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
             "histogram": ("_bucket", "_count", "_sum", "_created")}


def status_class(status: int | None) -> str:
    """``2xx`` … ``5xx`` for an HTTP status; ``error`` when no answer came."""
    return f"{status // 100}xx" if status else "error"


def error_code(exc: NotifierError) -> str:
    """The ``code`` label of a Roomlio error: the HTTP status, or what went wrong."""
    status = getattr(exc, "status", None)
    if status:
        return str(status)
    text = str(exc)
    for needle, code in (("no answer within", "timeout"), ("malformed", "malformed"),
                         ("not valid JSON", "malformed"), ("exceeds the", "too_large")):
        if needle in text:
            return code
    return "network"


@dataclass(frozen=True, slots=True)
class RoomView:
    """What the scrape needs to know about one room."""

    name: str
    lag: float | None
    last_ok: float | None


class Metrics:
    """The metric objects and the hook methods that update them."""

    def __init__(self, rooms: Iterable[str], webhooks: Iterable[str], *,
                 room_limit: int = ServerSettings().room_metrics_limit,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._labelled = frozenset(list(rooms)[:room_limit])
        self._api_seen: dict[str, int] = {}
        self._counters()
        self._gauges()
        Gauge("notifier_build_info", "The running version (always 1).", ["version"],
              registry=self.registry).labels(__version__).set(1)
        for webhook in webhooks:  # series exist from the start, so rates work at once
            self.breaker.labels(webhook).set(0)
            self.retries.labels(webhook)
            self.dead_lettered.labels(webhook)

    def _counters(self) -> None:
        r = self.registry
        self.polls = Counter("notifier_polls_total", "Room polls, by room and outcome (ok, "
                             "error).", ["room", "outcome"], registry=r)
        self.reads = Counter("notifier_room_requests_total", "RoomHistory requests of room "
                             "reads, by kind: poll (the tail by cursor) or edit_scan (the "
                             "edit window re-read, which stands for the poll when it finds "
                             "nothing new).", ["kind"], registry=r)
        for kind in ("poll", "edit_scan"):
            self.reads.labels(kind)
        self.api_errors = Counter("notifier_roomlio_errors_total", "Failed Roomlio calls, by "
                                  "HTTP status or timeout/network/malformed.", ["code"],
                                  registry=r)
        self.messages = Counter("notifier_messages_seen_total", "Messages read from Roomlio "
                                "(re-reads included).", registry=r)
        self.matches = Counter("notifier_rule_matches_total", "New message versions matched, "
                               "by rule.", ["rule"], registry=r)
        self.enqueued = Counter("notifier_events_enqueued_total", "Deliveries added to the "
                                "outbox, by webhook.", ["webhook"], registry=r)
        self.attempts = Counter("notifier_deliveries_total", "Delivery attempts, by webhook and "
                                "status class (2xx..5xx, error).", ["webhook", "status_class"],
                                registry=r)
        self.retries = Counter("notifier_delivery_retries_total", "Attempts after the first, "
                               "by webhook.", ["webhook"], registry=r)
        self.dead_lettered = Counter("notifier_dead_letters_total", "Deliveries moved to the "
                                     "dead letters, by webhook.", ["webhook"], registry=r)
        self.quarantined = Counter("notifier_quarantined_messages", "Messages the tail could "
                                   "not process and quarantined, by room.", ["room"],
                                   registry=r)
        self.api_requests = Counter("notifier_roomlio_requests_total", "Roomlio requests "
                                    "sent (retries and edit scans included).", registry=r)
        self.api_refusals = Counter("notifier_roomlio_refusals_total", "Roomlio requests "
                                    "refused with 429 (the API key's rate limit).",
                                    registry=r)
        self.latency = Histogram("notifier_delivery_latency_seconds", "From detection of a "
                                 "message to its webhook's 2xx.", ["webhook"],
                                 buckets=LATENCY_BUCKETS, registry=r)

    def _gauges(self) -> None:
        r = self.registry
        self.outbox = Gauge("notifier_outbox_depth", "Deliveries waiting in the outbox.",
                            registry=r)
        self.dead_letters = Gauge("notifier_dead_letters_stored", "Dead letters kept in the store.",
                                  registry=r)
        self.quarantine = Gauge("notifier_quarantined_messages_stored", "Messages kept in the "
                                "quarantine (until replayed or purged).", registry=r)
        self.lag = Gauge("notifier_room_lag_seconds", "Now minus the newest message seen, by "
                         "room (capped rooms only).", ["room"], registry=r)
        self.last_poll = Gauge("notifier_room_last_poll_timestamp_seconds", "Unix time of the "
                               "last successful poll, by room (capped rooms only).", ["room"],
                               registry=r)
        self.lag_max = Gauge("notifier_rooms_lag_max_seconds", "The largest room lag, over "
                             "every room.", registry=r)
        self.oldest_poll = Gauge("notifier_rooms_oldest_poll_timestamp_seconds", "The oldest "
                                 "last successful poll, over every room (0: a room never "
                                 "polled).", registry=r)
        self.rooms = Gauge("notifier_rooms", "Rooms configured.", registry=r)
        self.learned_rate = Gauge("notifier_roomlio_learned_rate", "The request rate (a "
                                  "second) learned from 429s that paces every request of "
                                  "the API key; 0: none learned yet.", registry=r)
        self.rate_limited = Gauge("notifier_roomlio_rate_limited", "1 from Roomlio's first "
                                  "429 of an episode until a minute passes without one.",
                                  registry=r)
        self.breaker = Gauge("notifier_webhook_breaker_state", "Circuit breaker per webhook: "
                             "0 closed, 1 half-open, 2 open.", ["webhook"], registry=r)

    def room_label(self, room: str) -> str:
        """The ``room`` label value for ``room`` under the cardinality cap."""
        return room if room in self._labelled else OTHER_ROOMS

    # hooks (see notifier.runtime.hooks.ServiceHooks)

    def on_poll(self, room: str, seen: int) -> None:
        self.polls.labels(self.room_label(room), "ok").inc()
        self.messages.inc(seen)

    def on_read(self, _room: str, kind: str, requests: int) -> None:
        self.reads.labels(kind).inc(requests)

    def on_poll_failed(self, room: str, _exc: NotifierError) -> None:
        self.polls.labels(self.room_label(room), "error").inc()

    def on_quarantined(self, room: str, count: int) -> None:
        self.quarantined.labels(self.room_label(room)).inc(count)

    def on_api_error(self, exc: NotifierError) -> None:
        self.api_errors.labels(error_code(exc)).inc()

    def on_enqueued(self, added: list[Delivery]) -> None:
        events: dict[str, set[str]] = {}
        for delivery in added:
            self.enqueued.labels(delivery.webhook).inc()
            events.setdefault(delivery.event.id, set()).update(delivery.rules)
        for rules in events.values():
            for rule in rules:
                self.matches.labels(rule).inc()

    def on_attempt(self, report: AttemptReport) -> None:
        if report.status is None and not report.error:
            return  # cancelled at shutdown: neither a success nor a failure
        webhook = report.delivery.webhook
        self.attempts.labels(webhook, status_class(report.status)).inc()
        if report.attempt > 1:
            self.retries.labels(webhook).inc()

    def on_outcome(self, outcome: DeliveryOutcome) -> None:
        webhook = outcome.delivery.webhook
        if outcome.ok:
            seconds = max(0.0, self._clock() - outcome.delivery.event.detected_at)
            self.latency.labels(webhook).observe(seconds)
        else:
            self.dead_lettered.labels(webhook).inc()

    # scrape time

    def refresh(self, *, outbox: int | None, dead_letters: int | None,
                rooms: Iterable[RoomView], breakers: Mapping[str, str],
                quarantined: int | None = None, api: Mapping[str, Any] | None = None) -> None:
        """Set the gauges that are read, not counted, just before a scrape; ``api`` is the
        throttle's usage (notifier.polling.throttle.KeyThrottle.usage)."""
        if api is not None:
            self._api(api)
        if outbox is not None:
            self.outbox.set(outbox)
        if dead_letters is not None:
            self.dead_letters.set(dead_letters)
        if quarantined is not None:
            self.quarantine.set(quarantined)
        views = list(rooms)
        self.rooms.set(len(views))
        for view in views:
            if view.name in self._labelled:
                if view.lag is not None:
                    self.lag.labels(view.name).set(view.lag)
                if view.last_ok is not None:
                    self.last_poll.labels(view.name).set(view.last_ok)
        lags = [v.lag for v in views if v.lag is not None]
        self.lag_max.set(max(lags, default=0.0))
        self.oldest_poll.set(min((v.last_ok or 0.0 for v in views), default=0.0))
        for webhook, state in breakers.items():
            self.breaker.labels(webhook).set(BREAKER_VALUES.get(state, 0))

    def _api(self, usage: Mapping[str, Any]) -> None:
        """The throttle's figures: its totals count on, so the counters take the difference."""
        self.learned_rate.set(usage["learned_rate"] or 0.0)
        self.rate_limited.set(1 if usage["limited"] else 0)
        for counter, key in ((self.api_requests, "requests_total"),
                             (self.api_refusals, "refusals_total")):
            added = usage[key] - self._api_seen.get(key, 0)
            if added > 0:
                counter.inc(added)
                self._api_seen[key] = usage[key]

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def names(self) -> set[str]:
        """Every sample name this registry can expose (for checking dashboards)."""
        return {family.name + suffix for family in self.registry.collect()
                for suffix in _SUFFIXES.get(family.type, ("",))}
