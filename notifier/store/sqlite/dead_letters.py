"""The SQLite store's dead letters and delivery operations: dead-lettering, dead-letter
replay and purge, event replay past the ledger, and each webhook's saved health. Plain
functions of a connection, run on the store's worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from notifier.events import Delivery
from notifier.store import rows
from notifier.store.base import DeadLetter, WebhookState
from notifier.store.sqlite.locking import StateConnection
from notifier.store.sqlite.outbox import add_events, select
from notifier.store.sqlite.schema import transaction
from notifier.util.json import dumps

__all__ = ["dead_letter", "dead_letters", "purge_dead_letters", "requeue",
           "requeue_dead_letters", "save_webhook_state", "webhook_states"]

_MOVE_BACK = (
    "INSERT OR IGNORE INTO outbox (id, event_seq, webhook, rules, attempts, next_attempt_at,"
    " last_status, last_error, created_at) SELECT id, event_seq, webhook, rules, 0, ?,"
    " last_status, last_error, ? FROM dead_letters WHERE id = ?")


def dead_letter(conn: StateConnection, delivery_id: str, attempts: int,
                last_status: int | None, last_error: str, now: float) -> None:
    """Move one outbox row to the dead letters (nothing happens if it is not there)."""
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO dead_letters (id, event_seq, webhook, rules, attempts,"
            " last_status, last_error, failed_at) SELECT id, event_seq, webhook, rules,"
            " ?, ?, ?, ? FROM outbox WHERE id = ?",
            (attempts, last_status, last_error, now, delivery_id))
        conn.execute("DELETE FROM outbox WHERE id = ?", (delivery_id,))


def dead_letters(conn: StateConnection) -> list[DeadLetter]:
    """Every dead letter, oldest first."""
    return rows.decode_dead_letters(conn.execute(
        select("dead_letters", "t.last_status", "t.last_error", "t.failed_at")
        + " ORDER BY t.failed_at, t.rowid").fetchall())


def _move_back(conn: StateConnection, ids: Sequence[str], now: float) -> int:
    moved = 0
    for delivery_id in dict.fromkeys(ids):
        moved += conn.execute(_MOVE_BACK, (now, now, delivery_id)).rowcount
        conn.execute("DELETE FROM dead_letters WHERE id = ?", (delivery_id,))
    return moved


def requeue_dead_letters(conn: StateConnection, ids: Sequence[str], now: float) -> int:
    """Move dead letters back to the outbox with a fresh budget; return how many moved."""
    with transaction(conn):
        return _move_back(conn, ids, now)


def purge_dead_letters(conn: StateConnection, ids: Sequence[str]) -> int:
    """Delete dead letters; return how many were deleted."""
    deleted = 0
    with transaction(conn):
        for delivery_id in dict.fromkeys(ids):
            deleted += conn.execute("DELETE FROM dead_letters WHERE id = ?",
                                    (delivery_id,)).rowcount
    return deleted


def requeue(conn: StateConnection, deliveries: Sequence[Delivery], now: float) -> int:
    """Enqueue deliveries whether or not the ledger knows their events (replay)."""
    events = rows.page_events(deliveries)[0]
    with transaction(conn):
        known, added_events = add_events(conn, events)
        seqs = known | added_events
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


def webhook_states(conn: StateConnection) -> dict[str, WebhookState]:
    """Every saved webhook state, by name."""
    return rows.decode_webhook_states(conn.execute(
        f"SELECT {rows.WEBHOOK_STATE_COLUMNS} FROM webhook_state ORDER BY webhook"))


def save_webhook_state(conn: StateConnection, state: WebhookState, now: float) -> None:
    """Insert or replace one webhook's state."""
    with transaction(conn):
        conn.execute(
            f"INSERT OR REPLACE INTO webhook_state ({rows.WEBHOOK_STATE_COLUMNS}, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows.webhook_state_values(state, now))
