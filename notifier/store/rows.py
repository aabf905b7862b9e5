"""How both stores write and read the tables they share: one place turns a row into a
Delivery, DeadLetter, RoomState, Quarantined or WebhookState, and one builds the queries
whose rows it reads. The SQL dialects differ (``?`` and ``$1``, table prefixes), so what
is shared is the columns and the query shapes; each backend writes its own statements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from notifier.errors import StoreError
from notifier.events import Delivery, Event
from notifier.store.base import DeadLetter, Quarantined, WebhookState
from notifier.util.json import dumps, loads

__all__ = ["QUARANTINE_COLUMNS", "ROOM_COLUMNS", "WEBHOOK_STATE_COLUMNS", "OutboxEntry",
           "StateDump", "Transfer", "decode_dead_letters", "decode_deliveries",
           "decode_outbox", "decode_quarantined", "decode_webhook_states", "event_values",
           "page_events", "prune_ledger", "quarantine_values", "select_deliveries",
           "select_quarantined", "store_stats", "webhook_state_values"]

#: A pending delivery as ``outbox()`` lists it: (delivery, next_attempt_at, last_status,
#: last_error).
OutboxEntry = tuple[Delivery, float, int | None, str | None]
Row = Sequence[Any]

#: RoomState's fields, in order: ``RoomState(*row)`` reads a row of these columns.
ROOM_COLUMNS = "room, cursor, last_id, high_water"
#: A quarantined message's columns (reads add ``id`` last: see ``decode_quarantined``).
QUARANTINE_COLUMNS = ("room, fingerprint, message_id, position, reason, raw, truncated,"
                      " quarantined_at")
#: WebhookState's fields, in order (writes add ``updated_at`` last).
WEBHOOK_STATE_COLUMNS = ("webhook, breaker, opened_at, failing_since, last_success_at,"
                         " disabled_at, disabled_reason")


@dataclass(frozen=True, slots=True)
class StateDump:
    """A whole state read in one snapshot, to be copied into another store (``notifier
    state migrate``): rows of the columns below, each list in the source's order."""

    events: list[Row]
    """The ledger: seq, id, kind, room, message, rules, detected_at (``seq`` is the
    source's numbering, which the other lists refer to as ``event_seq``)."""
    outbox: list[Row]
    """id, event_seq, webhook, rules, attempts, next_attempt_at, last_status, last_error,
    created_at."""
    dead_letters: list[Row]
    """id, event_seq, webhook, rules, attempts, last_status, last_error, failed_at."""
    rooms: list[Row]
    """ROOM_COLUMNS, then updated_at."""
    quarantine: list[Row]
    """QUARANTINE_COLUMNS."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """What a copy of a StateDump added (and what the target already had)."""

    rooms: int
    events: int
    outbox: int
    dead_letters: int
    skipped_events: int
    quarantined: int = 0


def select_deliveries(table: str, *extra: str, events: str) -> str:
    """A query on the outbox or dead-letter ``table`` joined with the ledger ``events``,
    whose columns 0-9 rebuild a Delivery (``decode_deliveries``), then ``extra``."""
    columns = ", ".join(("t.id, t.webhook, t.rules, t.attempts, e.id, e.kind, e.room,"
                         " e.message, e.rules, e.detected_at", *extra))
    return f"SELECT {columns} FROM {table} AS t JOIN {events} AS e ON e.seq = t.event_seq"


def _setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of the frozen dataclass ``cls``, whose fields must be ``names``
    (in order) and whose ``__init__`` must do nothing else (checked at import)."""
    if tuple(f.name for f in fields(cls)) != names or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} changed: update notifier.store.rows._setters")
    return tuple(cls.__dict__[name].__set__ for name in names)


# A frozen dataclass's __init__ sets each field through object.__setattr__, which copies
# its arguments each time: setting the slots directly builds a claimed row's Event and
# Delivery for less (bench/RESULTS.md, issue 16, "store5").
_EVENT = _setters(Event, ("id", "kind", "room", "message", "rules", "detected_at"))
_DELIVERY = _setters(Delivery, ("id", "webhook", "rules", "event", "attempts"))


def decode_deliveries(rows: Iterable[Row]) -> list[Delivery]:
    """Rebuild deliveries from rows of a ``select_deliveries`` query (one Event per id)."""
    events: dict[str, Event] = {}
    rules: dict[str, tuple[str, ...]] = {}  # a few distinct lists of rule names: read once
    e_id, e_kind, e_room, e_message, e_rules, e_detected_at = _EVENT
    d_id, d_webhook, d_rules, d_event, d_attempts = _DELIVERY
    new = object.__new__
    result: list[Delivery] = []
    for row in rows:
        event = events.get(row[4])
        if event is None:
            if (names := rules.get(row[8])) is None:
                names = rules[row[8]] = tuple(loads(row[8]))
            event = events[row[4]] = new(Event)
            e_id(event, row[4])
            e_kind(event, row[5])
            e_room(event, row[6])
            e_message(event, loads(row[7]))
            e_rules(event, names)
            e_detected_at(event, row[9])
        if (names := rules.get(row[2])) is None:
            names = rules[row[2]] = tuple(loads(row[2]))
        delivery = new(Delivery)
        d_id(delivery, row[0])
        d_webhook(delivery, row[1])
        d_rules(delivery, names)
        d_event(delivery, event)
        d_attempts(delivery, row[3])
        result.append(delivery)
    return result


def decode_dead_letters(rows: Sequence[Row]) -> list[DeadLetter]:
    """Rows of ``select_deliveries(dead letters, events, last_status, last_error,
    failed_at)`` as DeadLetters."""
    return [DeadLetter(d, r[10], r[11], r[12])
            for d, r in zip(decode_deliveries(rows), rows, strict=True)]


def decode_outbox(rows: Sequence[Row]) -> list[OutboxEntry]:
    """Rows of ``select_deliveries(outbox, events, next_attempt_at, last_status,
    last_error)`` as OutboxEntries."""
    return [(d, r[10], r[11], r[12])
            for d, r in zip(decode_deliveries(rows), rows, strict=True)]


def select_quarantined(table: str, limit: int | None) -> str:
    """The kept messages of ``table``: all, oldest first, or the newest ``limit``, newest
    first (``decode_quarantined`` turns both oldest first)."""
    if limit is None:
        order = " ORDER BY quarantined_at, id"
    else:
        order = f" ORDER BY quarantined_at DESC, id DESC LIMIT {int(limit)}"
    return f"SELECT {QUARANTINE_COLUMNS}, id FROM {table}{order}"


def decode_quarantined(rows: Iterable[Row], limit: int | None) -> list[Quarantined]:
    """Rows of ``select_quarantined(table, limit)`` as Quarantined, oldest first."""
    found = []
    for row in rows:
        room, fingerprint, message_id, position, reason, raw, truncated, at, row_id = row
        found.append(Quarantined(room, reason, raw, bool(truncated), fingerprint, position,
                                 message_id, at, row_id))
    return found if limit is None else found[::-1]


def quarantine_values(q: Quarantined, now: float) -> tuple[Any, ...]:
    """The QUARANTINE_COLUMNS of ``q`` (kept at ``now`` unless it says when)."""
    return (q.room, q.fingerprint, q.message_id, q.position, q.reason, q.raw, q.truncated,
            q.quarantined_at or now)


def decode_webhook_states(rows: Iterable[Row]) -> dict[str, WebhookState]:
    """Rows of WEBHOOK_STATE_COLUMNS as WebhookStates, by webhook name."""
    return {row[0]: WebhookState(*row) for row in rows}


def webhook_state_values(state: WebhookState, now: float) -> tuple[Any, ...]:
    """The WEBHOOK_STATE_COLUMNS of ``state``, then ``now`` (``updated_at``)."""
    return (state.webhook, state.breaker, state.opened_at, state.failing_since,
            state.last_success_at, state.disabled_at, state.disabled_reason, now)


def event_values(event: Event, rules: str | None = None) -> tuple[Any, ...]:
    """A ledger row: id, kind, room, message, rules, detected_at (JSON text for the
    message and rules; ``rules`` given when the caller has it already); a message that
    cannot be JSON fails the whole commit."""
    try:
        message = dumps(event.message)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"commit failed: the message of event {event.id} cannot be stored"
                         f" as JSON ({exc}); nothing was saved") from exc
    return (event.id, event.kind, event.room, message,
            dumps(list(event.rules)) if rules is None else rules, event.detected_at)


def page_events(batch: Iterable[Delivery]) -> tuple[dict[str, Event], list[Delivery]]:
    """The events of ``batch`` and its deliveries, each once (a page may repeat itself:
    the first copy wins), in the order they came."""
    events: dict[str, Event] = {}
    unique: dict[str, Delivery] = {}
    for delivery in batch:
        events.setdefault(delivery.event.id, delivery.event)
        unique.setdefault(delivery.id, delivery)
    return events, list(unique.values())


def store_stats(prefix: str) -> str:
    """StoreStats' counts in one snapshot, over the tables whose names start ``prefix``."""
    return "SELECT " + ", ".join(f"(SELECT count(*) FROM {prefix}{table})" for table in
                                 ("outbox", "dead_letters", "rooms", "quarantine"))


def prune_ledger(prefix: str, older_than: str) -> str:
    """Delete the ledger entries detected before the parameter ``older_than`` that no
    outbox row or dead letter refers to (tables named ``prefix`` + ...)."""
    events = f"{prefix}events"
    return (f"DELETE FROM {events} WHERE detected_at < {older_than}"
            f" AND NOT EXISTS (SELECT 1 FROM {prefix}outbox WHERE event_seq = {events}.seq)"
            f" AND NOT EXISTS (SELECT 1 FROM {prefix}dead_letters"
            f" WHERE event_seq = {events}.seq)")
