"""The SQLite store's statements: plain functions of a connection, run on its worker thread.

Each function is one call from the async shell (``sqlite/__init__.py``) and, when it writes more
than one row, one ``BEGIN IMMEDIATE`` transaction with batched statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence
from typing import Any, cast

from notifier.errors import StoreError
from notifier.events import Delivery, Event, EventKind
from notifier.store.base import Quarantined, RoomState
from notifier.store.quarantine import insert_sqlite
from notifier.store.sqlite.schema import transaction
from notifier.util.json import dumps, loads

__all__ = ["claim", "commit", "commit_page", "dead_letter", "deliveries", "next_due",
           "select_deliveries", "update_each"]

Row = tuple[Any, ...]

_CHUNK = 500  # ids per IN (...) query, well below SQLite's bound-parameter limit
_DUE = " WHERE t.next_attempt_at <= ? AND t.claimed_by IS NULL"
_OLDEST = " ORDER BY t.next_attempt_at, t.id"


def select_deliveries(table: str, *extra: str) -> str:
    """A query whose columns 0-9 rebuild a Delivery (see ``deliveries``), then ``extra``."""
    columns = ", ".join(("t.id, t.webhook, t.rules, t.attempts, e.id, e.kind, e.room,"
                         " e.message, e.rules, e.detected_at", *extra))
    return f"SELECT {columns} FROM {table} AS t JOIN events AS e ON e.seq = t.event_seq"


#: An ordered webhook's claimable rows: per room, the row whose event the ledger numbered
#: first (events.seq follows the tail's page order), if due and if no row of that room
#: for that webhook is claimed (count() skips NULLs). Parameters: webhook, now, webhook.
_HEAD_SEQS = (" AND t.event_seq IN (SELECT min(o.event_seq) FROM outbox AS o"
              " JOIN events AS r ON r.seq = o.event_seq WHERE o.webhook = ?"
              " GROUP BY r.room HAVING count(o.claimed_by) = 0)")
_HEADS = select_deliveries("outbox", "t.next_attempt_at") + (
    " WHERE t.webhook = ? AND t.claimed_by IS NULL AND t.next_attempt_at <= ?"
    + _HEAD_SEQS + _OLDEST)
#: When the next head of an ordered webhook is due. Parameters: webhook, webhook.
_NEXT_HEAD = ("SELECT min(t.next_attempt_at) FROM outbox AS t"
              " WHERE t.webhook = ? AND t.claimed_by IS NULL" + _HEAD_SEQS)


def deliveries(rows: Sequence[Row]) -> list[Delivery]:
    """Rebuild deliveries from rows of a ``select_deliveries`` query."""
    events: dict[str, Event] = {}
    result = []
    for row in rows:
        event = events.get(row[4])
        if event is None:
            event = events[row[4]] = Event(
                row[4], cast(EventKind, row[5]), row[6], loads(row[7]),
                tuple(loads(row[8])), row[9])
        result.append(Delivery(row[0], row[1], tuple(loads(row[2])), event, row[3]))
    return result


def commit(conn: sqlite3.Connection, state: RoomState | None,
           batch: Sequence[Delivery], now: float) -> list[Delivery]:
    """Save ``state`` and the deliveries of events new to the ledger, in one transaction."""
    return commit_page(conn, state, batch, (), now)[0]


def commit_page(conn: sqlite3.Connection, state: RoomState | None, batch: Sequence[Delivery],
                quarantine: Sequence[Quarantined], now: float) -> tuple[list[Delivery], int]:
    """``commit``, keeping the page's quarantined messages in the same transaction; return
    (deliveries added, messages newly kept)."""
    events: dict[str, Event] = {}
    unique: dict[str, Delivery] = {}
    for delivery in batch:  # a page may repeat itself: the first copy wins
        events.setdefault(delivery.event.id, delivery.event)
        unique.setdefault(delivery.id, delivery)
    with transaction(conn):
        known = _known_events(conn, list(events))
        # Numbered here rather than by SQLite: executemany cannot return the rowids.
        first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
        new = [event_id for event_id in events if event_id not in known]
        seqs = {event_id: first + n for n, event_id in enumerate(new)}
        conn.executemany(
            "INSERT INTO events (seq, id, kind, room, message, rules, detected_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", [_event_row(seqs[i], events[i]) for i in new])
        added = [d for d in unique.values() if d.event.id in seqs]
        conn.executemany(
            "INSERT INTO outbox (id, event_seq, webhook, rules, attempts, next_attempt_at,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(d.id, seqs[d.event.id], d.webhook, dumps(list(d.rules)), d.attempts, now, now)
             for d in added])
        if state is not None:
            conn.execute(
                "INSERT INTO rooms (room, cursor, last_id, high_water, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room) DO UPDATE SET"
                " cursor = excluded.cursor, last_id = excluded.last_id,"
                " high_water = excluded.high_water, updated_at = excluded.updated_at",
                (state.room, state.cursor, state.last_id, state.high_water, now))
        kept = insert_sqlite(conn, quarantine, now)
    return added, kept


def claim(conn: sqlite3.Connection, now: float, limit: int, exclude: frozenset[str],
          webhooks: Collection[str] | None, instance: str,
          ordered: Collection[str] = ()) -> list[Row]:
    """Mark up to ``limit`` due, unclaimed rows as ``instance``'s; return them.

    A webhook in ``ordered`` gets only the head of each room's queue (see ``_heads``).
    """
    if limit <= 0 or (webhooks is not None and not webhooks):
        return []
    in_order = frozenset(ordered)
    sql = select_deliveries("outbox", "t.next_attempt_at") + _DUE
    with transaction(conn):
        if webhooks is None:
            rows = _take(conn.execute(sql + _OLDEST, (now,)), limit, exclude, in_order)
            lanes: Collection[str] = in_order
        else:
            rows, lanes = [], webhooks
        # One index range per webhook, so a full lane's backlog is never scanned.
        for webhook in dict.fromkeys(lanes):
            if webhook in in_order:
                rows += _take(conn.execute(_HEADS, (webhook, now, webhook)), limit, exclude)
            else:
                cursor = conn.execute(sql + " AND t.webhook = ?" + _OLDEST, (now, webhook))
                rows += _take(cursor, limit, exclude)
        rows = sorted(rows, key=lambda r: (r[10], r[0]))[:limit]
        conn.executemany("UPDATE outbox SET claimed_by = ? WHERE id = ?",
                         [(instance, r[0]) for r in rows])
    return rows


def next_due(conn: sqlite3.Connection, ordered: Collection[str]) -> float | None:
    """When the earliest row ``claim`` could hand out becomes due (None: no such row)."""
    lanes = list(dict.fromkeys(ordered))
    marks = ",".join("?" * len(lanes))
    times = [conn.execute("SELECT min(next_attempt_at) FROM outbox WHERE claimed_by IS NULL"
                          f" AND webhook NOT IN ({marks})", lanes).fetchone()[0]]
    times += [conn.execute(_NEXT_HEAD, (w, w)).fetchone()[0] for w in lanes]
    found = [t for t in times if t is not None]
    return min(found) if found else None


def update_each(conn: sqlite3.Connection, sql: str, ids: Iterable[str]) -> None:
    """Run ``sql`` once per id, all in one transaction."""
    params = [(i,) for i in ids]
    if params:
        with transaction(conn):
            conn.executemany(sql, params)


def dead_letter(conn: sqlite3.Connection, delivery_id: str, attempts: int,
                last_status: int | None, last_error: str, now: float) -> None:
    """Move one outbox row to the dead letters (nothing happens if it is not there)."""
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO dead_letters (id, event_seq, webhook, rules, attempts,"
            " last_status, last_error, failed_at) SELECT id, event_seq, webhook, rules,"
            " ?, ?, ?, ? FROM outbox WHERE id = ?",
            (attempts, last_status, last_error, now, delivery_id))
        conn.execute("DELETE FROM outbox WHERE id = ?", (delivery_id,))


def _take(cursor: sqlite3.Cursor, limit: int, exclude: frozenset[str],
          skip_webhooks: frozenset[str] = frozenset()) -> list[Row]:
    # Stream rows and skip the excluded ones, rather than binding them into NOT IN (...).
    rows: list[Row] = []
    try:
        for row in cursor:
            if row[0] not in exclude and row[1] not in skip_webhooks:
                rows.append(row)
                if len(rows) == limit:
                    break
    finally:
        cursor.close()
    return rows


def _known_events(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        known.update(r[0] for r in conn.execute(
            f"SELECT id FROM events WHERE id IN ({marks})", chunk))
    return known


def _event_row(seq: int, event: Event) -> Row:
    try:
        message = dumps(event.message)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"commit failed: the message of event {event.id} cannot be stored"
                         f" as JSON ({exc}); nothing was saved") from exc
    return (seq, event.id, event.kind, event.room, message, dumps(list(event.rules)),
            event.detected_at)
