"""The SQLite store's delivery-operations statements: dead-letter replay and purge, event
replay past the ledger, and each webhook's saved health. Run on the store's worker thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from notifier.events import Delivery, Event
from notifier.store.base import WebhookState
from notifier.store.sqlite import rows as ops
from notifier.store.sqlite.schema import transaction
from notifier.util.json import dumps

__all__ = ["purge_dead_letters", "requeue", "requeue_dead_letters", "save_webhook_state",
           "webhook_states"]

_CHUNK = 500
_MOVE_BACK = (
    "INSERT OR IGNORE INTO outbox (id, event_seq, webhook, rules, attempts, next_attempt_at,"
    " last_status, last_error, created_at) SELECT id, event_seq, webhook, rules, 0, ?,"
    " last_status, last_error, ? FROM dead_letters WHERE id = ?")
_STATE_COLUMNS = ("webhook, breaker, opened_at, failing_since, last_success_at, disabled_at,"
                  " disabled_reason")


def _move_back(conn: sqlite3.Connection, ids: Sequence[str], now: float) -> int:
    moved = 0
    for delivery_id in dict.fromkeys(ids):
        moved += conn.execute(_MOVE_BACK, (now, now, delivery_id)).rowcount
        conn.execute("DELETE FROM dead_letters WHERE id = ?", (delivery_id,))
    return moved


def requeue_dead_letters(conn: sqlite3.Connection, ids: Sequence[str], now: float) -> int:
    """Move dead letters back to the outbox with a fresh budget; return how many moved."""
    with transaction(conn):
        return _move_back(conn, ids, now)


def purge_dead_letters(conn: sqlite3.Connection, ids: Sequence[str]) -> int:
    """Delete dead letters; return how many were deleted."""
    deleted = 0
    with transaction(conn):
        for delivery_id in dict.fromkeys(ids):
            deleted += conn.execute("DELETE FROM dead_letters WHERE id = ?",
                                    (delivery_id,)).rowcount
    return deleted


def requeue(conn: sqlite3.Connection, deliveries: Sequence[Delivery], now: float) -> int:
    """Enqueue deliveries whether or not the ledger knows their events (replay)."""
    events: dict[str, Event] = {}
    for delivery in deliveries:
        events.setdefault(delivery.event.id, delivery.event)
    with transaction(conn):
        seqs = _ledger(conn, events)
        dead = {r[0] for r in conn.execute(
            "SELECT id FROM dead_letters WHERE id IN (SELECT value FROM json_each(?))",
            (dumps([d.id for d in deliveries]),))}
        added = _move_back(conn, sorted(dead), now)
        for d in deliveries:
            if d.id not in dead:
                added += conn.execute(
                    "INSERT OR IGNORE INTO outbox (id, event_seq, webhook, rules, attempts,"
                    " next_attempt_at, created_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                    (d.id, seqs[d.event.id], d.webhook, dumps(list(d.rules)), now,
                     now)).rowcount
    return added


def _ledger(conn: sqlite3.Connection, events: dict[str, Event]) -> dict[str, int]:
    """The ledger seq of each event, adding the ones it does not know."""
    seqs: dict[str, int] = {}
    ids = list(events)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        seqs.update(conn.execute(f"SELECT id, seq FROM events WHERE id IN ({marks})", chunk))
    first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
    new = [event_id for event_id in ids if event_id not in seqs]
    for n, event_id in enumerate(new):
        seqs[event_id] = first + n
    conn.executemany(
        "INSERT INTO events (seq, id, kind, room, message, rules, detected_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [ops._event_row(seqs[i], events[i]) for i in new])
    return seqs


def webhook_states(conn: sqlite3.Connection) -> dict[str, WebhookState]:
    """Every saved webhook state, by name."""
    rows = conn.execute(f"SELECT {_STATE_COLUMNS} FROM webhook_state ORDER BY webhook")
    return {row[0]: WebhookState(*row) for row in rows}


def save_webhook_state(conn: sqlite3.Connection, state: WebhookState, now: float) -> None:
    """Insert or replace one webhook's state."""
    conn.execute(
        f"INSERT OR REPLACE INTO webhook_state ({_STATE_COLUMNS}, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (state.webhook, state.breaker, state.opened_at, state.failing_since,
         state.last_success_at, state.disabled_at, state.disabled_reason, now))
