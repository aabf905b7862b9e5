"""The SQLite store's room states, ledger, outbox and claims: plain functions of a
connection, run on the store's worker thread.

Each function is one call from the async shell (``sqlite/__init__.py``) and, when it writes more
than one row, one ``BEGIN IMMEDIATE`` transaction with batched statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence
from functools import partial
from itertools import chain
from typing import Any

from notifier.events import Delivery, Event
from notifier.store import rows
from notifier.store.base import Quarantined, RoomState, StoreStats
from notifier.store.sqlite import ledger, quarantine
from notifier.store.sqlite.locking import StateConnection
from notifier.store.sqlite.schema import transaction

__all__ = ["add_events", "claim", "clear_claims", "commit_page", "delivered", "load_room",
           "next_due", "pending", "prune", "release", "release_claims", "reschedule", "rooms",
           "select", "stats"]

Row = tuple[Any, ...]

_CHUNK = 500  # ids per IN (...) query, well below SQLite's bound-parameter limit
_DUE = " WHERE t.next_attempt_at <= ? AND t.claimed_by IS NULL"
_OLDEST = " ORDER BY t.next_attempt_at, t.id"


#: ``select(table, *extra)``: deliveries of ``table`` with their events (rows.select_deliveries).
select = partial(rows.select_deliveries, events="events")


#: An ordered webhook's claimable rows: per room, the row whose event the ledger numbered
#: first (events.seq follows the tail's page order), if due and if no row of that room
#: for that webhook is claimed (count() skips NULLs). Parameters: webhook, now, webhook.
_HEAD_SEQS = (" AND t.event_seq IN (SELECT min(o.event_seq) FROM outbox AS o"
              " JOIN events AS r ON r.seq = o.event_seq WHERE o.webhook = ?"
              " GROUP BY r.room HAVING count(o.claimed_by) = 0)")
_CLAIMED = select("outbox", "t.next_attempt_at", "t.rowid")
_ALL_DUE = _CLAIMED + _DUE + _OLDEST
_LANE_DUE = _CLAIMED + _DUE + " AND t.webhook = ?" + _OLDEST
_HEADS = _CLAIMED + (
    " WHERE t.webhook = ? AND t.claimed_by IS NULL AND t.next_attempt_at <= ?"
    + _HEAD_SEQS + _OLDEST)
#: When the next head of an ordered webhook is due. Parameters: webhook, webhook.
_NEXT_HEAD = ("SELECT min(t.next_attempt_at) FROM outbox AS t"
              " WHERE t.webhook = ? AND t.claimed_by IS NULL" + _HEAD_SEQS)


def commit_page(conn: StateConnection, state: RoomState | None, batch: Sequence[Delivery],
                quarantined: Sequence[Quarantined], now: float,
                claimed: Collection[str] = (), instance: str = "") -> tuple[list[Delivery], int]:
    """Save ``state``, the deliveries of events new to the ledger and the page's quarantined
    messages, in one transaction; return (deliveries added, messages newly kept).

    The deliveries whose ids are in ``claimed`` are inserted claimed by ``instance``, whose
    sender takes them from the page itself: they never enter the partial indexes of
    unclaimed rows, which a later claim would update (bench/RESULTS.md, issue 16)."""
    page = ledger.Page(batch, frozenset(claimed))
    # A page that brings no delivery and keeps no message only moves the cursor: a power
    # cut that forgets it makes the tail read those messages again, never skip one, and
    # the next synced commit syncs it too (sqlite.locking). Everything else is synced.
    with transaction(conn, durable=bool(batch or quarantined)):
        added = ledger.insert(conn, page, now, instance) if batch else []
        if state is not None:
            conn.execute(
                "INSERT INTO rooms (room, cursor, last_id, high_water, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room) DO UPDATE SET"
                " cursor = excluded.cursor, last_id = excluded.last_id,"
                " high_water = excluded.high_water, updated_at = excluded.updated_at",
                (state.room, state.cursor, state.last_id, state.high_water, now))
        kept = quarantine.insert(conn, quarantined, now)
    return added, kept


def claim(conn: StateConnection, now: float, limit: int, exclude: frozenset[str],
          webhooks: Collection[str] | None, instance: str,
          ordered: Collection[str] = ()) -> list[Row]:
    """Mark up to ``limit`` due, unclaimed rows as ``instance``'s; return them (columns
    0-9 as ``select`` makes them, then next_attempt_at and the outbox rowid).

    A webhook in ``ordered`` gets only the head of each room's queue (see ``_heads``).
    """
    if limit <= 0 or (webhooks is not None and not webhooks):
        return []
    in_order = frozenset(ordered)
    with transaction(conn, durable=False):  # a claim a power cut forgets costs nothing
        if webhooks is None:
            found = [_take(conn.execute(_ALL_DUE, (now,)), limit, exclude, in_order)]
            lanes: Collection[str] = in_order
        else:
            found, lanes = [], webhooks
        # One index range per webhook, so a full lane's backlog is never scanned.
        for webhook in dict.fromkeys(lanes):
            if webhook in in_order:
                found.append(_take(conn.execute(_HEADS, (webhook, now, webhook)), limit, exclude))
            else:
                found.append(_take(conn.execute(_LANE_DUE, (now, webhook)), limit, exclude))
        # Each query's rows come oldest first already: only several need merging.
        taken = found[0] if len(found) == 1 else sorted(
            chain.from_iterable(found), key=lambda r: (r[10], r[0]))[:limit]
        # By rowid (stable within the transaction): no lookup in the id index per row.
        _by_ids(conn, "UPDATE outbox SET claimed_by = ? WHERE rowid IN ({})",
                [r[11] for r in taken], instance)
    return taken


def next_due(conn: StateConnection, ordered: Collection[str]) -> float | None:
    """When the earliest row ``claim`` could hand out becomes due (None: no such row)."""
    lanes = list(dict.fromkeys(ordered))
    marks = ",".join("?" * len(lanes))
    times = [conn.execute("SELECT min(next_attempt_at) FROM outbox WHERE claimed_by IS NULL"
                          f" AND webhook NOT IN ({marks})", lanes).fetchone()[0]]
    times += [conn.execute(_NEXT_HEAD, (w, w)).fetchone()[0] for w in lanes]
    found = [t for t in times if t is not None]
    return min(found) if found else None


def load_room(conn: StateConnection, room: str) -> RoomState | None:
    """The saved state of ``room``, or None when it was never tailed."""
    row = conn.execute(f"SELECT {rows.ROOM_COLUMNS} FROM rooms WHERE room = ?", (room,)).fetchone()
    return RoomState(*row) if row else None


def rooms(conn: StateConnection) -> list[RoomState]:
    """Every room's saved state, by room."""
    return [RoomState(*row) for row in
            conn.execute(f"SELECT {rows.ROOM_COLUMNS} FROM rooms ORDER BY room").fetchall()]


def pending(conn: StateConnection, limit: int) -> list[rows.OutboxEntry]:
    """Up to ``limit`` outbox deliveries, soonest first."""
    return rows.decode_outbox(conn.execute(
        select("outbox", "t.next_attempt_at", "t.last_status", "t.last_error")
        + " ORDER BY t.next_attempt_at, t.id LIMIT ?", (limit,)).fetchall())


def delivered(conn: StateConnection, ids: Iterable[str]) -> None:
    """Remove deliveries that received a 2xx (not synced on its own: one a power cut
    forgets is sent again under its webhook-id)."""
    _in_transaction(conn, "DELETE FROM outbox WHERE id IN ({})", list(ids), durable=False)


def reschedule(conn: StateConnection, delivery_id: str, attempts: int,
               next_attempt_at: float, last_status: int | None, last_error: str) -> None:
    """Record a failed attempt and when the next one is due; the claim is kept."""
    with transaction(conn):  # synced: the attempts spent count against the retry budget
        conn.execute("UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_status = ?,"
                     " last_error = ? WHERE id = ?",
                     (attempts, next_attempt_at, last_status, last_error, delivery_id))


def release(conn: StateConnection, ids: Iterable[str]) -> None:
    """Give claimed deliveries back to the outbox."""
    _in_transaction(conn, "UPDATE outbox SET claimed_by = NULL WHERE id IN ({})", list(ids))


def clear_claims(conn: StateConnection) -> None:
    """Give back every claim (an exclusive start: no other runner is alive to hold one)."""
    with transaction(conn):
        conn.execute("UPDATE outbox SET claimed_by = NULL WHERE claimed_by IS NOT NULL")


def release_claims(conn: StateConnection, instance: str) -> None:
    """Give back every delivery ``instance`` claimed."""
    with transaction(conn):
        conn.execute("UPDATE outbox SET claimed_by = NULL WHERE claimed_by = ?", (instance,))


def prune(conn: StateConnection, older_than: float) -> int:
    """Forget ledger entries detected before ``older_than`` that nothing refers to."""
    with transaction(conn):
        return conn.execute(rows.prune_ledger("", "?"), (older_than,)).rowcount


def stats(conn: StateConnection) -> StoreStats:
    """Outbox depth, dead letters, rooms known, messages quarantined (one snapshot)."""
    return StoreStats(*conn.execute(rows.store_stats("")).fetchone())


def _in_transaction(conn: StateConnection, sql: str, ids: Sequence[str], *,
                    durable: bool = True) -> None:
    """``_by_ids`` in a transaction of its own (none when there are no ids)."""
    if ids:
        with transaction(conn, durable=durable):
            _by_ids(conn, sql, ids)


def _by_ids(conn: StateConnection, sql: str, ids: Sequence[str], *first: object) -> None:
    """Run ``sql`` (its ``IN ({})`` filled with ``?``s) for ``ids``, ``_CHUNK`` at a time,
    ``first`` bound before them: one statement per chunk costs less CPU than one per id
    (bench/RESULTS.md, issue 16)."""
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        conn.execute(sql.format(",".join("?" * len(chunk))), (*first, *chunk))


def _take(cursor: sqlite3.Cursor, limit: int, exclude: frozenset[str],
          skip_webhooks: frozenset[str] = frozenset()) -> list[Row]:
    # Fetch rows in blocks and skip the excluded ones, rather than binding them into
    # NOT IN (...); the held ids are claimed already, so a block is usually all kept.
    kept: list[Row] = []
    try:
        while len(kept) < limit:
            block = cursor.fetchmany(limit - len(kept))
            if skip_webhooks:
                kept += [r for r in block if r[0] not in exclude and r[1] not in skip_webhooks]
            elif exclude:
                kept += [r for r in block if r[0] not in exclude]
            else:
                kept += block
            if not block:
                break
    finally:
        cursor.close()
    return kept


def add_events(conn: StateConnection, events: dict[str, Event]
               ) -> tuple[dict[str, int], dict[str, int]]:
    """Add the ``events`` the ledger does not know (inside the caller's transaction);
    return the ledger seqs of (the events it knew, the events added)."""
    known = _known_events(conn, list(events))
    # Numbered here rather than by SQLite: executemany cannot return the rowids.
    first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
    new = [event_id for event_id in events if event_id not in known]
    seqs = {event_id: first + n for n, event_id in enumerate(new)}
    conn.executemany(
        "INSERT INTO events (seq, id, kind, room, message, rules, detected_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)", [(seqs[i], *rows.event_values(events[i])) for i in new])
    return known, seqs


def _known_events(conn: StateConnection, ids: Sequence[str]) -> dict[str, int]:
    known: dict[str, int] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        known.update(conn.execute(f"SELECT id, seq FROM events WHERE id IN ({marks})", chunk))
    return known
