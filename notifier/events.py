"""Event: the one type that flows from the tailer through the store to delivery.

An event is one matched *version* of a Roomlio message (its id plus its ``editedAt``).
Its id, and the ``webhook-id`` of each delivery made from it, are derived from that
version alone, so they are the same across retries, restarts and replays, and differ
between two versions of the same message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = [
    "CREATED",
    "EDITED",
    "NEVER_EDITED",
    "WEBHOOK_DISABLED",
    "Delivery",
    "Event",
    "EventKind",
    "delivery_id",
    "event_id",
    "is_edited",
]

EventKind = Literal["message.created", "message.edited", "webhook.disabled"]
CREATED: EventKind = "message.created"
EDITED: EventKind = "message.edited"
#: An operational event (to ``ops_webhook``): its ``message`` holds the event's data.
WEBHOOK_DISABLED: EventKind = "webhook.disabled"

#: Roomlio's ``editedAt`` for a message that was never edited.
NEVER_EDITED = "0001-01-01T00:00:00Z"


def is_edited(message: Mapping[str, Any]) -> bool:
    """Whether the message carries a real ``editedAt`` (not the zero time, not missing)."""
    edited = message.get("editedAt")
    return bool(edited) and not str(edited).startswith("0001-01-01")


#: Every pair of base32 digits (RFC 4648 alphabet, lower case), by the 10 bits they spell.
_B32_PAIRS = [a + b for a in "abcdefghijklmnopqrstuvwxyz234567"
              for b in "abcdefghijklmnopqrstuvwxyz234567"]


def _b32(digest: bytes) -> str:
    """``base64.b32encode(digest)``, lower case, for 20 bytes (32 digits, no padding);
    a sixth of its CPU (two ids per delivery: it showed in the profile of issue 16): the
    160 bits read as one int, cut into 16 pairs of digits without a loop."""
    p, n = _B32_PAIRS, int.from_bytes(digest, "big")
    return "".join((p[n >> 150], p[(n >> 140) & 1023], p[(n >> 130) & 1023],
                    p[(n >> 120) & 1023], p[(n >> 110) & 1023], p[(n >> 100) & 1023],
                    p[(n >> 90) & 1023], p[(n >> 80) & 1023], p[(n >> 70) & 1023],
                    p[(n >> 60) & 1023], p[(n >> 50) & 1023], p[(n >> 40) & 1023],
                    p[(n >> 30) & 1023], p[(n >> 20) & 1023], p[(n >> 10) & 1023],
                    p[n & 1023]))


def _digest_id(prefix: str, *parts: str) -> str:
    return prefix + _b32(hashlib.sha256("\x00".join(parts).encode()).digest()[:20])


def event_id(message_id: str, edited_at: str) -> str:
    """The stable id of one message version."""
    return _digest_id("evt_", message_id, edited_at or NEVER_EDITED)


def delivery_id(event_id_: str, webhook: str) -> str:
    """The stable ``webhook-id`` of one event sent to one webhook."""
    return _digest_id("msg_", event_id_, webhook)


@dataclass(frozen=True, slots=True)
class Event:
    """A message version that matched at least one rule."""

    id: str
    kind: EventKind
    room: str
    """The room as configured (its id, or its key when configured by key)."""
    message: Mapping[str, Any]
    """The Roomlio message exactly as received."""
    rules: tuple[str, ...]
    """Every rule that matched, in configuration order."""
    detected_at: float
    """Unix time at which the notifier first saw this version."""

    @classmethod
    def from_message(cls, kind: EventKind, room: str, message: Mapping[str, Any],
                     rules: tuple[str, ...], detected_at: float) -> Event:
        """Build the event for a matched message, deriving its stable id."""
        edited = str(message.get("editedAt") or NEVER_EDITED)
        ident = event_id(str(message["id"]), edited)
        if cls is not Event:  # a subclass: its own constructor
            return cls(ident, kind, room, message, rules, detected_at)
        event = _new(Event)
        set_id, set_kind, set_room, set_message, set_rules, set_detected = _EVENT_SLOTS
        set_id(event, ident)
        set_kind(event, kind)
        set_room(event, room)
        set_message(event, message)
        set_rules(event, rules)
        set_detected(event, detected_at)
        return event


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event bound for one webhook: a row of the outbox."""

    id: str
    """The ``webhook-id``: stable for this event and webhook."""
    webhook: str
    rules: tuple[str, ...]
    """The matched rules that notify this webhook."""
    event: Event
    attempts: int = 0
    """Attempts already made (persisted, so a restart resumes the retry budget)."""

    @classmethod
    def for_webhook(cls, event: Event, webhook: str, rules: tuple[str, ...]) -> Delivery:
        """The delivery of ``event`` to ``webhook`` on behalf of ``rules``."""
        ident = delivery_id(event.id, webhook)
        if cls is not Delivery:  # a subclass: its own constructor
            return cls(ident, webhook, rules, event)
        delivery = _new(Delivery)
        set_id, set_webhook, set_rules, set_event, set_attempts = _DELIVERY_SLOTS
        set_id(delivery, ident)
        set_webhook(delivery, webhook)
        set_rules(delivery, rules)
        set_event(delivery, event)
        set_attempts(delivery, 0)
        return delivery


_new = object.__new__


def _slot_setters(cls: type) -> tuple[Callable[[object, object], None], ...]:
    """Each field's slot setter, in field order: what a frozen dataclass's ``__init__``
    reaches through ``object.__setattr__``, at about a third of the cost (an event and
    its delivery are built for every matching message; the fields are set exactly as
    ``__init__`` sets them: test_event_ids compares the two)."""
    return tuple(vars(cls)[f.name].__set__ for f in fields(cls))


_EVENT_SLOTS = _slot_setters(Event)
_DELIVERY_SLOTS = _slot_setters(Delivery)
