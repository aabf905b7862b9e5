"""The SQLite store's quarantine: messages the tail could not process, kept until replayed
or purged. Rows are written by ``outbox.commit_page`` in the page's own transaction (so a
crash never keeps a message and loses the cursor move, or the other way round).

A message is kept once per room: ``(room, fingerprint)`` is unique, so the same message
read again (a resumed tail, an edit scan) adds nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from notifier.store.base import Quarantined
from notifier.store.rows import (
    QUARANTINE_COLUMNS,
    decode_quarantined,
    quarantine_values,
    select_quarantined,
)
from notifier.store.sqlite.schema import transaction

__all__ = ["insert", "remove", "select"]


def insert(conn: sqlite3.Connection, quarantine: Sequence[Quarantined], now: float) -> int:
    """Keep ``quarantine`` (inside the caller's transaction); return how many were new."""
    if not quarantine:
        return 0
    cursor = conn.executemany(f"INSERT OR IGNORE INTO quarantine ({QUARANTINE_COLUMNS})"
                              " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              [quarantine_values(q, now) for q in quarantine])
    return max(cursor.rowcount, 0)


def select(conn: sqlite3.Connection, limit: int | None) -> list[Quarantined]:
    """Kept messages, oldest first (the newest ``limit`` when given)."""
    rows = conn.execute(select_quarantined("quarantine", limit)).fetchall()
    return decode_quarantined(rows, limit)


def remove(conn: sqlite3.Connection, ids: Sequence[int]) -> int:
    """Forget kept messages; return how many were removed."""
    with transaction(conn):
        removed = conn.executemany("DELETE FROM quarantine WHERE id = ?",
                                   [(int(i),) for i in ids])
    return max(removed.rowcount, 0)
