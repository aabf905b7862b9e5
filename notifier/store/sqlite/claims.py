"""Claiming due outbox rows: one statement per webhook reads the rows as one JSON document.

A claim of 256 rows read row by row was 256 ``sqlite3_step`` calls, around each of which
the store's thread lets the GIL go and waits to have it back from the event loop, plus a
Python loop over the rows. Here each query returns its rows as one JSON array
(``json_group_array``), the messages and rule lists already as JSON values, read with
one ``loads``; the rows are then marked claimed by one statement whatever their number.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from notifier.store.sqlite.locking import StateConnection
from notifier.store.sqlite.schema import transaction
from notifier.util.json import dumps, loads

__all__ = ["HEAD_SEQS", "claim"]

#: A claimed row: id, webhook, rules (list), attempts, event id, kind, room, message
#: (mapping), event rules (list), detected_at, next_attempt_at (``rows.decode_claimed``).
Row = list[Any]

#: An ordered webhook's claimable rows: per room, the row whose event the ledger numbered
#: first (events.seq follows the tail's page order), if due and if no row of that room
#: for that webhook is claimed (count() skips NULLs). Parameter: webhook.
HEAD_SEQS = (" AND t.event_seq IN (SELECT min(o.event_seq) FROM outbox AS o"
             " JOIN events AS r ON r.seq = o.event_seq WHERE o.webhook = ?"
             " GROUP BY r.room HAVING count(o.claimed_by) = 0)")

# Times are unix times: '%!.17g' spells each so that it reads back as the same double
# (json_array's own rendering keeps 15 digits, about 10 µs of a unix time).
_ROWS = ("SELECT json_group_array(json_array(t.id, t.webhook, json(t.rules), t.attempts,"
         " e.id, e.kind, e.room, json(e.message), json(e.rules),"
         " json(printf('%!.17g', e.detected_at)), json(printf('%!.17g', t.next_attempt_at))))"
         " FROM (SELECT * FROM outbox AS t WHERE t.claimed_by IS NULL AND t.next_attempt_at <= ?"
         " AND t.id NOT IN (SELECT value FROM json_each(?)) {}"
         " ORDER BY t.next_attempt_at, t.id LIMIT ?) AS t JOIN events AS e ON e.seq = t.event_seq")
#: Parameters: now, excluded ids (JSON), ordered webhooks (JSON), limit.
_ALL = _ROWS.format("AND t.webhook NOT IN (SELECT value FROM json_each(?))")
#: Parameters: now, excluded ids (JSON), webhook, limit.
_LANE = _ROWS.format("AND t.webhook = ?")
#: Parameters: now, excluded ids (JSON), webhook, webhook, limit.
_HEADS = _ROWS.format("AND t.webhook = ?" + HEAD_SEQS)


def claim(conn: StateConnection, now: float, limit: int, exclude: frozenset[str],
          webhooks: Collection[str] | None, instance: str,
          ordered: Collection[str] = ()) -> list[Row]:
    """Mark up to ``limit`` due, unclaimed rows as ``instance``'s; return them, oldest
    first. A webhook in ``ordered`` gets only the head of each room's queue."""
    if limit <= 0 or (webhooks is not None and not webhooks):
        return []
    in_order = frozenset(ordered)
    skip = dumps(sorted(exclude))
    with transaction(conn, durable=False):  # a claim a power cut forgets costs nothing
        if webhooks is None:
            taken = _read(conn, _ALL, (now, skip, dumps(sorted(in_order)), limit))
            lanes: Collection[str] = in_order
        else:
            taken, lanes = [], webhooks
        # One index range per webhook, so a full lane's backlog is never scanned.
        for webhook in dict.fromkeys(lanes):
            if webhook in in_order:
                taken += _read(conn, _HEADS, (now, skip, webhook, webhook, limit))
            else:
                taken += _read(conn, _LANE, (now, skip, webhook, limit))
        taken = sorted(taken, key=lambda r: (r[10], r[0]))[:limit]
        if taken:
            conn.execute("UPDATE outbox SET claimed_by = ? WHERE id IN"
                         " (SELECT value FROM json_each(?))",
                         (instance, dumps([r[0] for r in taken])))
    return taken


def _read(conn: StateConnection, sql: str, params: tuple[Any, ...]) -> list[Row]:
    found: list[Row] = loads(conn.execute(sql, params).fetchone()[0])
    return found
