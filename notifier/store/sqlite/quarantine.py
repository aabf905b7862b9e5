"""The SQLite store's quarantine of messages the tail could not process (see
notifier.polling.quarantine): ``insert`` runs inside ``outbox.commit_page``'s transaction, so
a crash never keeps a message and loses the cursor move, or the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

from notifier.store import rows
from notifier.store.base import Quarantined
from notifier.store.sqlite.locking import StateConnection
from notifier.store.sqlite.schema import transaction

__all__ = ["insert", "remove", "select"]


def insert(conn: StateConnection, quarantine: Sequence[Quarantined], now: float) -> int:
    """Keep ``quarantine`` (inside the caller's transaction); return how many were new (a
    message read again adds nothing: ``(room, fingerprint)`` is unique)."""
    if not quarantine:
        return 0
    cursor = conn.executemany(f"INSERT OR IGNORE INTO quarantine ({rows.QUARANTINE_COLUMNS})"
                              " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              [rows.quarantine_values(q, now) for q in quarantine])
    return max(cursor.rowcount, 0)


def select(conn: StateConnection, limit: int | None) -> list[Quarantined]:
    """Kept messages, oldest first (the newest ``limit`` when given)."""
    found = conn.execute(rows.select_quarantined("quarantine", limit)).fetchall()
    return rows.decode_quarantined(found, limit)


def remove(conn: StateConnection, ids: Sequence[int]) -> int:
    """Forget kept messages; return how many were removed."""
    with transaction(conn):
        removed = conn.executemany("DELETE FROM quarantine WHERE id = ?",
                                   [(int(i),) for i in ids])
    return max(removed.rowcount, 0)
