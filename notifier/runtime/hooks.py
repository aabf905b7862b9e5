"""What the running service reports to observers (metrics, the status board, the demo, tests).

``ServiceHooks`` holds one optional callable per kind of report; ``fan_out`` joins several
into one, hook by hook, written out, so that adding a hook is one line here and one in
``fan_out``, and a reader sees who hears what without following reflection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from notifier.delivery.sender import AttemptReport, DeliveryOutcome
from notifier.errors import NotifierError, RoomlioError
from notifier.events import Delivery

__all__ = ["ServiceHooks", "fan_out"]

F = TypeVar("F", bound=Callable[..., None])


@dataclass
class ServiceHooks:
    """Optional observers (the demo prints deliveries; tests await conditions)."""

    on_outcome: Callable[[DeliveryOutcome], None] | None = None
    on_poll: Callable[[str, int], None] | None = None
    on_read: Callable[[str, str, int], None] | None = None
    """A room was read: (room, "poll" or "edit_scan", RoomHistory requests sent)."""
    on_poll_failed: Callable[[str, NotifierError], None] | None = None
    """A room's poll failed (room name, the error); the room retries with backoff."""
    on_api_error: Callable[[RoomlioError], None] | None = None
    """Every failed Roomlio call, including those retried within one poll."""
    on_enqueued: Callable[[list[Delivery]], None] | None = None
    on_quarantined: Callable[[str, int], None] | None = None
    """A room's tail quarantined messages it could not process (room name, how many new)."""
    on_attempt: Callable[[AttemptReport], None] | None = None
    on_reload: Callable[[bool], None] | None = None
    """A config reload was tried: True if it took over, False if the file was invalid."""


def fan_out(*parts: ServiceHooks | None) -> ServiceHooks:
    """One ServiceHooks that calls, for each hook, every part's callable in order."""
    hooks = [p for p in parts if p is not None]
    return ServiceHooks(
        on_outcome=_each(h.on_outcome for h in hooks),
        on_poll=_each(h.on_poll for h in hooks),
        on_read=_each(h.on_read for h in hooks),
        on_poll_failed=_each(h.on_poll_failed for h in hooks),
        on_api_error=_each(h.on_api_error for h in hooks),
        on_enqueued=_each(h.on_enqueued for h in hooks),
        on_quarantined=_each(h.on_quarantined for h in hooks),
        on_attempt=_each(h.on_attempt for h in hooks),
        on_reload=_each(h.on_reload for h in hooks),
    )


def _each(callables: Iterable[F | None]) -> F | None:
    """None when nobody listens, the one listener itself, or a call to each in turn: the
    hot hooks (an attempt, an outcome) pay for a wrapper only when two parts listen."""
    targets = [c for c in callables if c is not None]
    if len(targets) <= 1:
        return targets[0] if targets else None

    def call_all(*args: object) -> None:
        for target in targets:
            target(*args)

    return call_all  # type: ignore[return-value]
