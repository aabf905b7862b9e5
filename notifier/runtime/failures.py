"""What a failed read of a room costs (the backoff before its next try, the hook, one log
line), and which error a failed task group of the service reports."""

from __future__ import annotations

import asyncio
import logging

from notifier.errors import NotifierError, RoomlioNotFoundError
from notifier.polling.policy import failure_delay
from notifier.polling.scheduler import RoomTurn
from notifier.runtime.hooks import ServiceHooks
from notifier.util.shown import shown

__all__ = ["Unexpected", "first_fatal", "room_failed", "unexpected"]

log = logging.getLogger("notifier.service")


class Unexpected(NotifierError):
    """An exception no part of a poll raises on purpose (a bug, or input nothing foresaw):
    it fails the room's poll like a Roomlio error would, never the process."""


def unexpected(exc: Exception) -> Unexpected:
    """``exc`` as a room's failure, with it as the cause (its traceback is logged once)."""
    wrapped = Unexpected(f"unexpected {type(exc).__name__} while polling: "
                         f"{shown(str(exc), 300)}")
    wrapped.__cause__ = exc
    return wrapped


def room_failed(room: str, turn: RoomTurn, exc: NotifierError, *, poll_interval: float,
                hooks: ServiceHooks) -> float:
    """Count the failure on the room's turn, tell the hook, log it; the pause before the
    room's next try."""
    if hooks.on_poll_failed is not None:
        hooks.on_poll_failed(room, exc)
    turn.failures += 1
    delay = failure_delay(turn.failures, poll_interval,
                          room_unknown=isinstance(exc, RoomlioNotFoundError))
    bug = isinstance(exc, Unexpected)
    # A 429 is the key's, not the room's: the throttle warns once for all rooms.
    level = (logging.ERROR if bug else logging.INFO if getattr(exc, "status", None) == 429
             else logging.WARNING)
    # A bug's traceback once per failure streak: enough to report it, not a flood.
    log.log(level,
            "room %s: %s; next try in %.0fs (cursor kept)", room, exc, delay,
            exc_info=exc.__cause__ if bug and turn.failures == 1 else None,
            extra={"room": room, "status": getattr(exc, "status", None)})
    return delay


def first_fatal(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report when a task of the group failed (the group itself is noise)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_fatal(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group
