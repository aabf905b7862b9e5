"""How a defective message is kept in the quarantine (pure; the store keeps the records,
``notifier quarantine`` lists, replays and purges them).

One bad message must cost that message, not its room: the tail keeps it (with its room,
where it was read, why, and the message itself, cut at QUARANTINE_RAW_LIMIT) and moves on.
Once the cause is fixed (the rules, the parser, or nothing was wrong but our reading), a
replay makes the deliveries the tail would have made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from notifier.polling.client import Defect, message_id
from notifier.store import QUARANTINE_RAW_LIMIT, Quarantined
from notifier.util.json import dumps

__all__ = ["keep"]


def keep(room: str, defects: Sequence[Defect], where: str, now: float) -> list[Quarantined]:
    """The quarantine records of a page's ``defects`` (``where``: how the page was asked for)."""
    kept = []
    for defect in defects:
        text, whole = _json_of(defect)
        kept.append(Quarantined(
            room=room, reason=defect.reason, raw=text[:QUARANTINE_RAW_LIMIT],
            truncated=not whole or len(text) > QUARANTINE_RAW_LIMIT,
            fingerprint=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
            position=f"{where}, messages[{defect.index}]",
            message_id=message_id(defect.message) or None, quarantined_at=now))
    return kept


def _json_of(defect: Defect) -> tuple[str, bool]:
    """The message as JSON, and whether that is all of it."""
    try:
        return dumps(defect.message), True
    except (TypeError, ValueError, RecursionError) as exc:  # nested past what we can write
        return f"(not kept: the message cannot be written back as JSON: {exc})", False
