"""ISO 8601 parsing and formatting, tolerant of the forms Roomlio may send."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

__all__ = ["format_time", "parse_time"]

_LATEST = datetime.max.replace(tzinfo=UTC)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
#: Bound once: ``datetime.fromisoformat`` makes a bound method at every call, and every
#: message read has its createdAt parsed.
_fromisoformat = datetime.fromisoformat


def parse_time(value: object) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text (``Z`` or an offset), or None if invalid.

    Never raises, whatever ``value`` holds: it comes from remote fields. A valid time
    whose UTC form falls outside the calendar datetime can hold (``9999-12-31T23:59:59-01:00``)
    reads as its first or last moment, so comparisons with it still order correctly."""
    if not isinstance(value, str):
        return None
    try:
        when = _fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is UTC:  # "Z" or "+00:00", as Roomlio writes every time
        return when
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # the offset pushed it past year 1 or year 9999
        offset = when.utcoffset() or timedelta(0)
        return _EARLIEST if offset > timedelta(0) else _LATEST


def format_time(when: datetime | float) -> str:
    """ISO 8601 UTC with a ``Z``, to the second (microseconds kept when present)."""
    if not isinstance(when, datetime):
        return _format_seconds(when)
    text = when.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


@functools.lru_cache(maxsize=64)
def _format_seconds(when: float) -> str:
    # Cached: every event of a page has the same detection time, and each delivery's body
    # spells it (the profile in bench/RESULTS.md, issue 16).
    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")
