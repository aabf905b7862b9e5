"""ISO 8601 parsing and formatting, tolerant of the forms Roomlio may send."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_time", "parse_time"]


def parse_time(value: str) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text (``Z`` or an offset), or None if invalid."""
    try:
        when = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def format_time(when: datetime | float) -> str:
    """ISO 8601 UTC with a ``Z``, to the second (microseconds kept when present)."""
    if not isinstance(when, datetime):
        return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")
    text = when.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
