"""The status board: what the status page and /readyz show, kept in memory from the hooks.

Pure: it holds recent facts (each room's polls and errors, each webhook's recent
attempts, the last deliveries) and turns them, with the tailers' cursors and the
store's dead letters and quarantined messages, into plain dicts. No I/O, an injected clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from notifier.delivery.sender import AttemptReport, DeliveryOutcome
from notifier.errors import NotifierError
from notifier.server.metrics import RoomView
from notifier.store import DeadLetter, Quarantined, RoomState, WebhookState
from notifier.util.time import parse_time

__all__ = ["Board", "RoomStatus", "WebhookStatus"]

#: Attempts per webhook that its success rate is computed over.
RATE_WINDOW = 100
#: Characters of a quarantined message the status page shows (`notifier quarantine list
#: --json` shows all that was kept).
MESSAGE_SHOWN = 2000


@dataclass
class RoomStatus:
    """One room's recent polling."""

    name: str
    polls: int = 0
    errors: int = 0
    failures: int = 0
    """Consecutive failed polls (0 once a poll succeeds)."""
    last_error: str = ""
    last_poll: float | None = None
    """The last poll attempt, successful or not."""
    last_ok: float | None = None


@dataclass
class WebhookStatus:
    """One webhook's recent attempts."""

    name: str
    results: deque[bool] = field(default_factory=lambda: deque(maxlen=RATE_WINDOW))
    last_status: int | None = None
    last_error: str = ""
    last_error_at: float | None = None
    delivered: int = 0
    dead_lettered: int = 0

    @property
    def success_rate(self) -> float | None:
        """The share of 2xx among the last RATE_WINDOW attempts (None before any)."""
        return sum(self.results) / len(self.results) if self.results else None


class Board:
    """Collects what the hooks report; renders snapshots for the page and the metrics."""

    def __init__(self, rooms: Iterable[str], webhooks: Iterable[str], *, recent: int = 50,
                 clock: Callable[[], float] = time.time) -> None:
        self.rooms = {name: RoomStatus(name) for name in rooms}
        self.webhooks = {name: WebhookStatus(name) for name in webhooks}
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self._clock = clock

    # hooks

    def on_poll(self, room: str, _seen: int) -> None:
        status = self.rooms.setdefault(room, RoomStatus(room))
        status.polls += 1
        status.failures = 0
        status.last_poll = status.last_ok = self._clock()

    def on_poll_failed(self, room: str, exc: NotifierError) -> None:
        status = self.rooms.setdefault(room, RoomStatus(room))
        status.polls += 1
        status.errors += 1
        status.failures += 1
        status.last_error = str(exc)
        status.last_poll = self._clock()

    def on_attempt(self, report: AttemptReport) -> None:
        if report.status is None and not report.error:
            return  # cancelled at shutdown
        hook = self.webhooks.setdefault(report.delivery.webhook,
                                        WebhookStatus(report.delivery.webhook))
        ok = report.status is not None and 200 <= report.status < 300
        hook.results.append(ok)
        hook.last_status = report.status
        if not ok:
            hook.last_error = report.error
            hook.last_error_at = self._clock()
        self.recent.appendleft({
            "at": self._clock(), "webhook": report.delivery.webhook,
            "id": report.delivery.id, "event_id": report.delivery.event.id,
            "room": report.delivery.event.room, "attempt": report.attempt,
            "status": report.status, "ok": ok, "error": report.error,
            "ms": round(report.seconds * 1000, 1),
        })

    def on_outcome(self, outcome: DeliveryOutcome) -> None:
        hook = self.webhooks.setdefault(outcome.delivery.webhook,
                                        WebhookStatus(outcome.delivery.webhook))
        if outcome.ok:
            hook.delivered += 1
        else:
            hook.dead_lettered += 1

    # views

    @property
    def first_poll_done(self) -> bool:
        """Every room has been polled at least once (a failed poll counts)."""
        return all(status.last_poll is not None for status in self.rooms.values())

    def room_views(self, states: Mapping[str, RoomState | None]) -> list[RoomView]:
        """Lag and last successful poll of every room, for the metrics."""
        now = self._clock()
        return [RoomView(name, _lag(states.get(name), now), status.last_ok)
                for name, status in self.rooms.items()]

    def snapshot(self, *, states: Mapping[str, RoomState | None],
                 webhooks: Mapping[str, WebhookState], dead_letters: Sequence[DeadLetter],
                 outbox: int | None, room_limit: int = 200,
                 quarantine: Sequence[Quarantined] = ()) -> dict[str, Any]:
        """The status page's data: rooms (worst first), webhooks, deliveries, dead letters,
        quarantined messages (newest first)."""
        now = self._clock()
        rooms = [_room_row(status, states.get(name), now) for name, status in self.rooms.items()]
        rooms.sort(key=lambda row: (-row["failures"], -(row["lag"] or 0.0), row["room"]))
        return {
            "now": now,
            "rooms_total": len(rooms),
            "rooms": rooms[:room_limit],
            "webhooks": [_webhook_row(hook, webhooks.get(name))
                         for name, hook in self.webhooks.items()],
            "recent": list(self.recent),
            "dead_letters": [_dead_row(d) for d in dead_letters],
            "quarantine": [_quarantine_row(q) for q in reversed(quarantine)],
            "outbox": outbox,
        }


def _lag(state: RoomState | None, now: float) -> float | None:
    newest = parse_time(state.high_water) if state and state.high_water else None
    return max(0.0, now - newest.timestamp()) if newest else None


def _room_row(status: RoomStatus, state: RoomState | None, now: float) -> dict[str, Any]:
    return {
        "room": status.name, "cursor": state.cursor if state else None,
        "newest": state.high_water if state else None, "lag": _lag(state, now),
        "last_poll": status.last_poll, "last_ok": status.last_ok, "polls": status.polls,
        "errors": status.errors, "failures": status.failures, "last_error": status.last_error,
    }


def _webhook_row(hook: WebhookStatus, saved: WebhookState | None) -> dict[str, Any]:
    if saved is not None and saved.disabled:
        state = f"disabled: {saved.disabled_reason}"
    else:
        state = "failing" if hook.results and not any(list(hook.results)[-5:]) else "ok"
    return {
        "webhook": hook.name, "state": state,
        "breaker": saved.breaker if saved is not None else "closed",
        "success_rate": hook.success_rate, "attempts": len(hook.results),
        "delivered": hook.delivered, "dead_lettered": hook.dead_lettered,
        "last_status": hook.last_status, "last_error": hook.last_error,
        "last_error_at": hook.last_error_at,
    }


def _dead_row(dead: DeadLetter) -> dict[str, Any]:
    d = dead.delivery
    return {"id": d.id, "webhook": d.webhook, "event_id": d.event.id, "room": d.event.room,
            "rules": list(d.rules), "attempts": d.attempts, "last_status": dead.last_status,
            "last_error": dead.last_error, "failed_at": dead.failed_at}


def _quarantine_row(item: Quarantined) -> dict[str, Any]:
    message = item.raw if len(item.raw) <= MESSAGE_SHOWN else item.raw[:MESSAGE_SHOWN] + "…"
    return {"id": item.id, "room": item.room, "message_id": item.message_id,
            "position": item.position, "reason": item.reason, "message": message,
            "truncated": item.truncated or len(item.raw) > MESSAGE_SHOWN,
            "quarantined_at": item.quarantined_at}
