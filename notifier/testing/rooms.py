"""The emulator's rooms: messages in creation order and RoomHistory paging, with no I/O.

Each room keeps a list of messages, a parallel list of creation times and a dict from
message id to list index, so a page costs O(page) whatever the room's size.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["CursorError", "Page", "Room", "format_time", "parse_time"]


def format_time(moment: datetime) -> str:
    """Roomlio's timestamp text: UTC, seconds precision, ``Z`` (``2021-01-06T19:13:05Z``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z")


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; one without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class CursorError(ValueError):
    """A ``startCursor`` that names no message of the room."""


@dataclass(slots=True)
class Page:
    """One RoomHistory answer, before it is turned into JSON (or spoiled by a fault)."""

    messages: list[dict[str, Any]]
    has_more: bool
    next_cursor: str
    start: int
    """Index in the room of the first message returned (-1 for a filtered page)."""

    def answer(self) -> dict[str, Any]:
        """The JSON object Roomlio would send."""
        return {"messages": self.messages, "hasMore": self.has_more,
                "nextCursor": self.next_cursor}


@dataclass(slots=True)
class Room:
    """A room's messages, oldest first, with what paging needs to stay O(page)."""

    id: str
    key: str | None
    name: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    ordered: bool = True
    """Whether creation times never decrease (so ``since`` can bisect)."""

    def append(self, message: dict[str, Any], created: datetime) -> None:
        """Add a message at the end of the room."""
        if self.times and created < self.times[-1]:
            self.ordered = False
        self.index[message["id"]] = len(self.messages)
        self.messages.append(message)
        self.times.append(created)

    def page(self, *, limit: int, cursor: str | None = None, since: datetime | None = None,
             inclusive: bool = False, empty_cursor_at_end: bool = True) -> Page:
        """The page a RoomHistory request asks for; raises CursorError for a foreign id."""
        if since is not None and cursor is None and not self.ordered:
            return self._filtered_page(limit, since, inclusive, empty_cursor_at_end)
        if cursor is not None:
            at = self.index.get(cursor)
            if at is None:
                raise CursorError(f"startCursor {cursor!r} is not a message of this room")
            start = at if inclusive else at + 1
        elif since is not None:
            start = bisect_left(self.times, since)
        else:
            start = 0
        end = min(start + limit, len(self.messages))
        chosen = self.messages[start:end]
        has_more = end < len(self.messages)
        if has_more:
            following = self.messages[end] if inclusive else chosen[-1]
            next_cursor = following["id"]
        else:
            next_cursor = _final_cursor(chosen, cursor, empty_cursor_at_end)
        return Page(chosen, has_more, next_cursor, start)

    def _filtered_page(self, limit: int, since: datetime, inclusive: bool,
                       empty_cursor_at_end: bool) -> Page:
        # Back-dated posts broke time order: scan, as a real database without an index would.
        hits = [m for m, t in zip(self.messages, self.times, strict=True) if t >= since]
        chosen = hits[:limit]
        if len(hits) > limit:
            following = hits[limit] if inclusive else chosen[-1]
            return Page(chosen, True, following["id"], -1)
        return Page(chosen, False, _final_cursor(chosen, None, empty_cursor_at_end), -1)


def _final_cursor(chosen: list[dict[str, Any]], cursor: str | None,
                  empty_cursor_at_end: bool) -> str:
    if empty_cursor_at_end:
        return ""
    if chosen:
        return str(chosen[-1]["id"])
    return cursor or ""
