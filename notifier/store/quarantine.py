"""The quarantine of both stores: messages the tail could not process, kept until replayed
or purged. Rows are written by each store's ``commit`` in the page's own transaction (so a
crash never keeps a message and loses the cursor move, or the other way round); this
module holds their SQL and the read and delete methods, as mixins of the two stores.

A message is kept once per room: ``(room, fingerprint)`` is unique, so the same message
read again (a resumed tail, an edit scan) adds nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from notifier.events import Delivery
from notifier.store.base import Quarantined, RoomState

__all__ = ["PG_INSERT", "PostgresQuarantine", "SQLiteQuarantine", "insert_sqlite", "pg_columns"]

T = TypeVar("T")

_COLUMNS = ("room, fingerprint, message_id, position, reason, raw, truncated,"
            " quarantined_at")
_SELECT = f"SELECT {_COLUMNS}, id FROM "
#: Parameters: the columns of pg_columns(), as arrays.
PG_INSERT = (f"INSERT INTO notifier_quarantine ({_COLUMNS}) SELECT * FROM unnest($1::text[],"
             " $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[],"
             " $8::float8[]) ON CONFLICT (room, fingerprint) DO NOTHING RETURNING id")


def _row(q: Quarantined, now: float) -> tuple[Any, ...]:
    return (q.room, q.fingerprint, q.message_id, q.position, q.reason, q.raw, q.truncated,
            q.quarantined_at or now)


def _read(row: Sequence[Any]) -> Quarantined:
    room, fingerprint, message_id, position, reason, raw, truncated, at, row_id = row
    return Quarantined(room, reason, raw, bool(truncated), fingerprint, position, message_id,
                       at, row_id)


def insert_sqlite(conn: sqlite3.Connection, quarantine: Sequence[Quarantined],
                  now: float) -> int:
    """Keep ``quarantine`` (inside the caller's transaction); return how many were new."""
    if not quarantine:
        return 0
    cursor = conn.executemany(f"INSERT OR IGNORE INTO quarantine ({_COLUMNS})"
                              " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              [_row(q, now) for q in quarantine])
    return max(cursor.rowcount, 0)


def pg_columns(quarantine: Sequence[Quarantined], now: float) -> list[list[Any]]:
    """PG_INSERT's parameters for ``quarantine``."""
    rows = [_row(q, now) for q in quarantine]
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[]] * 8


def _newest(limit: int | None) -> str:
    if limit is None:
        return " ORDER BY quarantined_at, id"
    return f" ORDER BY quarantined_at DESC, id DESC LIMIT {int(limit)}"


class SQLiteQuarantine:
    """The quarantine of SQLiteStore (over its ``_run``)."""

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # pragma: no cover - provided by SQLiteStore

    async def commit_page(self, state: RoomState | None, deliveries: Sequence[Delivery],
                          quarantine: Sequence[Quarantined]) -> tuple[list[Delivery], int]:
        """Save ``state``, new deliveries and new quarantined messages in one transaction."""
        from notifier.store.sqlite import rows as ops

        batch, kept = list(deliveries), list(quarantine)
        return await self._run("commit", lambda c: ops.commit_page(c, state, batch, kept,
                                                                   time.time()))

    async def quarantined(self, limit: int | None = None) -> list[Quarantined]:
        """Kept messages, oldest first (the newest ``limit`` when given)."""
        rows = await self._run("reading the quarantine", lambda c: c.execute(
            _SELECT + "quarantine" + _newest(limit)).fetchall())
        found = [_read(r) for r in rows]
        return found if limit is None else found[::-1]

    async def remove_quarantined(self, ids: Sequence[int]) -> int:
        """Forget kept messages; return how many were removed."""
        # imported here, like ``rows`` above: importing notifier.store.sqlite imports this module
        from notifier.store.sqlite.schema import transaction

        params = [(int(i),) for i in ids]

        def remove(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                removed = conn.executemany("DELETE FROM quarantine WHERE id = ?", params)
            return max(removed.rowcount, 0)

        return await self._run("removing quarantined messages", remove)


class PostgresQuarantine:
    """The quarantine of PostgresStore (over its ``_conn``)."""

    def _conn(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStore

    async def quarantined(self, limit: int | None = None) -> list[Quarantined]:
        """Kept messages, oldest first (the newest ``limit`` when given)."""
        async with self._conn("reading the quarantine") as conn:
            rows = await conn.fetch(_SELECT + "notifier_quarantine" + _newest(limit))
        found = [_read(tuple(r)) for r in rows]
        return found if limit is None else found[::-1]

    async def remove_quarantined(self, ids: Sequence[int]) -> int:
        """Forget kept messages; return how many were removed."""
        async with self._conn("removing quarantined messages") as conn:
            status = await conn.execute("DELETE FROM notifier_quarantine"
                                        " WHERE id = ANY($1::bigint[])", [int(i) for i in ids])
        return int(status.split()[-1])
