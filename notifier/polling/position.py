"""Where a room's tail stands, and where it goes next: pure functions of a RoomState.

``advance`` moves the resume point past a page; ``ahead`` finds messages dated in the
future; ``reads_like_a_poll`` and ``window_holds`` decide when an edit scan stands for
the room's poll and when there is nothing in the window to scan (``Tailer`` uses them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from notifier.errors import RoomlioTransientError
from notifier.polling.client import Page
from notifier.store import RoomState
from notifier.util.shown import shown
from notifier.util.time import format_time, parse_time

__all__ = ["CLOCK_SKEW", "FAR_FUTURE", "advance", "ahead", "created_at", "initial_state",
           "reads_like_a_poll", "where", "window_holds"]

#: Stands in for a time that cannot be read: later than any real one.
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)

#: How far a createdAt may be ahead of this host's clock and still count as the room's
#: resume point (Roomlio's clock and ours may disagree by a little).
CLOCK_SKEW = 60.0


def where(state: RoomState) -> str:
    """How the tail asks for its next page from ``state``, for the quarantine's records."""
    if state.cursor:
        return f"cursor {shown(state.cursor, 80)}"
    return f"since {state.high_water}" if state.high_water else "from the start"


def reads_like_a_poll(state: RoomState, last: str) -> bool:
    """Whether a scan that read to the end, its last message ``last`` ("" for none), read
    what a poll from ``state`` would have: nothing after the last message processed, and
    the tail not held back (a poll cut short leaves its cursor past ``last_id``). A room
    with nothing processed yet polls ``since`` its resume point, which lies within the
    window (else no scan is sent): an empty window means an empty poll."""
    if state.cursor is None and state.last_id is None:
        return not last
    return bool(last) and last == state.last_id == state.cursor


def window_holds(state: RoomState, since: float) -> bool:
    """Whether the edit window from ``since`` (unix time) may hold a message processed: not
    when the newest processed is older (``high_water`` never lies ahead of the clock, and
    a later-dated message is no edit candidate: see the horizon in ``scan_edits``)."""
    newest = parse_time(state.high_water) if state.high_water else None
    return newest is not None and newest.timestamp() >= since


def created_at(message: Mapping[str, Any]) -> datetime:
    return parse_time(str(message.get("createdAt", ""))) or FAR_FUTURE


def advance(state: RoomState, page: Page, *, now: float) -> RoomState:
    """The room state after processing ``page`` (pure; ``now`` is the local unix time).

    The resume point (``high_water``) is the newest ``createdAt`` processed, but not one
    more than CLOCK_SKEW ahead of ``now``: such a time (year 9999) says nothing about where
    the room stands, and resuming ``since`` it after a lost cursor would skip everything.
    Such a message is delivered all the same."""
    messages = page.messages
    # A defective message with a usable id is a position too: a tail resumed before it
    # would read it, and quarantine it, again.
    last_id = page.last_id or (str(messages[-1]["id"]) if messages else state.last_id)
    if page.has_more:
        cursor = page.next_cursor or last_id
        if not cursor or (cursor == state.cursor and not messages and not page.defects):
            raise RoomlioTransientError("RoomHistory said hasMore but gave no usable nextCursor")
    else:
        cursor = last_id or state.cursor
    high = parse_time(state.high_water) if state.high_water else None
    latest = datetime.fromtimestamp(now + CLOCK_SKEW, UTC)
    for created in _created_times(page, latest):
        if created is not None and created <= latest and (high is None or created > high):
            high = created
    return RoomState(state.room, cursor, last_id, format_time(high) if high else None)


def _created_times(page: Page, latest: datetime) -> Iterable[datetime | None]:
    """The ``createdAt`` times of the page's messages that may become the resume point:
    only the newest, which the parser read, when none lies beyond ``latest``."""
    if page.newest is not None and page.newest <= latest:
        return (page.newest,)
    return (parse_time(m["createdAt"]) for m in page.messages)


def ahead(messages: Sequence[Mapping[str, Any]], now: float,
          newest: datetime | None = None) -> list[Mapping[str, Any]]:
    """The messages dated more than CLOCK_SKEW after ``now`` (pure); none when
    ``newest``, a time no message's ``createdAt`` is later than, is within it."""
    latest = datetime.fromtimestamp(now + CLOCK_SKEW, UTC)
    if newest is not None and newest <= latest:
        return []
    return [m for m in messages if (parse_time(m["createdAt"]) or latest) > latest]


def initial_state(room: str, start_from: str | datetime, now: float) -> RoomState:
    """Where a room never tailed before starts (``roomlio.start_from``: "beginning",
    "now", or a moment)."""
    if start_from == "beginning":
        return RoomState(room)
    when = datetime.fromtimestamp(now, UTC) if start_from == "now" else start_from
    assert isinstance(when, datetime)
    return RoomState(room, high_water=format_time(when))
