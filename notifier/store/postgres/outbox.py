"""The PostgreSQL store's room states, ledger, outbox and claims: one function per
transaction, on one connection.

Every time that claims depend on is the database's clock (``NOW``), so hosts whose clocks
disagree still agree on who holds what. Due times of deliveries stay the sender's clock,
as with SQLite.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from notifier.events import Delivery
from notifier.store import rows
from notifier.store.base import Quarantined, RoomState, StoreStats
from notifier.store.postgres import quarantine
from notifier.store.postgres.leases import check_leases
from notifier.store.postgres.schema import NOW
from notifier.util.json import dumps

__all__ = ["NEXT_DUE", "Claim", "add_events", "claim", "commit", "delivered", "load_room",
           "pending", "prune", "release", "release_claims", "reschedule", "rooms", "select",
           "stats"]

#: A claim lapses when its deadline passed, or at once when the instance that made it
#: stopped renewing its registration (it died or hangs): that is the failover path.
_CLAIMABLE = f"""(o.claimed_by IS NULL OR o.claimed_until < {NOW} OR EXISTS (
    SELECT 1 FROM notifier_instances i WHERE i.id = o.claimed_by AND i.expires_at < {NOW}))"""


#: ``select(table, *extra)``: deliveries of ``table`` with their events (rows.select_deliveries).
select = partial(rows.select_deliveries, events="notifier_events")


@dataclass(frozen=True, slots=True)
class Claim:
    """Who claims the rows ``commit`` adds for the deliveries ``ids``, and for how long
    (seconds), as ``claim`` would mark them."""

    instance: str
    timeout: float
    ids: frozenset[str] = frozenset()


async def commit(conn: Any, state: RoomState | None, batch: Sequence[Delivery], now: float,
                 fence: str | None, quarantined: Sequence[Quarantined] = (),
                 claim: Claim | None = None) -> tuple[list[Delivery], int]:
    """Save ``state``, the deliveries of events new to the ledger and the quarantined
    messages not kept yet, in one transaction; with ``fence`` (an instance id), only while
    it holds the lease of every room written. The rows added for ``claim.ids`` are
    claimed by ``claim.instance``. Returns (deliveries added, messages kept)."""
    events, unique = rows.page_events(batch)
    values = [rows.event_values(e) for e in events.values()]
    async with conn.transaction():
        if fence is not None:
            rooms = {e.room for e in events.values()} | ({state.room} if state else set())
            await check_leases(conn, rooms | {q.room for q in quarantined}, fence)
        seqs = await add_events(conn, values)
        added = [d for d in unique if d.event.id in seqs]
        if added:  # one statement for the page's rows (executemany ran one per row)
            mine = claim.ids if claim is not None else frozenset()
            await conn.execute(_ADD, [d.id for d in added], [seqs[d.event.id] for d in added],
                               [d.webhook for d in added],
                               [dumps(list(d.rules)) for d in added],
                               [d.attempts for d in added], now,
                               [claim.instance if claim is not None and d.id in mine
                                else None for d in added],
                               claim.timeout if claim is not None else 0.0)
        if state is not None:
            await conn.execute(
                "INSERT INTO notifier_rooms (room, cursor, last_id, high_water, updated_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room) DO UPDATE SET"
                " cursor = excluded.cursor, last_id = excluded.last_id,"
                " high_water = excluded.high_water, updated_at = excluded.updated_at",
                state.room, state.cursor, state.last_id, state.high_water, now)
        kept = await quarantine.insert(conn, quarantined, now)
    return added, kept


#: Outbox rows from arrays of ids, event seqs, webhooks, rules, attempts and claimants
#: (NULL: unclaimed), due at $6; a claimed row is held $8 seconds, as ``_CLAIM`` holds it.
_ADD = ("INSERT INTO notifier_outbox (id, event_seq, webhook, rules, attempts, next_attempt_at,"
        " created_at, claimed_by, claimed_until) SELECT id, seq, webhook, rules, attempts, $6,"
        f" $6, claimant, CASE WHEN claimant IS NULL THEN NULL ELSE {NOW} + $8 END"
        " FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::int4[], $7::text[])"
        " AS r (id, seq, webhook, rules, attempts, claimant)")


async def add_events(conn: Any, values: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Add the ledger rows ``values`` (``rows.event_values``) the ledger does not know, numbered
    in their order; return the ledger seq of each event added."""
    inserted = await conn.fetch(
        "INSERT INTO notifier_events (id, kind, room, message, rules, detected_at)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
        " $5::text[], $6::float8[]) ON CONFLICT (id) DO NOTHING RETURNING id, seq",
        *(list(col) for col in zip(*values, strict=True)) if values else ([],) * 6)
    return {r["id"]: r["seq"] for r in inserted}


async def claim(conn: Any, now: float, limit: int, exclude: frozenset[str],
                webhooks: Collection[str] | None, instance: str,
                timeout: float, ordered: Collection[str] = ()) -> list[Any]:
    """Mark up to ``limit`` due, claimable rows as ``instance``'s; return them, oldest first.

    A webhook in ``ordered`` gets only the head of each room's queue (see ``_HEADS``).
    Without one, the claim is a single statement: locked, marked and read with its events
    in one round trip (atomic on its own, so no transaction around it).
    """
    if limit <= 0 or (webhooks is not None and not webhooks):
        return []
    in_order = [w for w in dict.fromkeys(ordered) if webhooks is None or w in webhooks]
    others = None if webhooks is None else [w for w in webhooks if w not in in_order]
    if not in_order:
        return list(await conn.fetch(_DUE + _CLAIM, now, list(exclude), others, limit,
                                     instance, timeout, in_order))
    async with conn.transaction():
        found = list(await conn.fetch(_HEADS + _CLAIM, now, list(exclude), in_order, limit,
                                     instance, timeout))
        if others is None or others:
            found += await conn.fetch(_DUE + _CLAIM, now, list(exclude), others,
                                     limit - len(found), instance, timeout, in_order)
    return sorted(found, key=lambda r: (r[10], r[0]))


#: Due, claimable rows of the webhooks $3 (NULL: all but the ordered ones, $7), oldest
#: first, locked (``SKIP LOCKED``: instances draining together never take the same row).
_DUE = ("WITH due AS (SELECT o.id FROM notifier_outbox AS o WHERE o.next_attempt_at <= $1"
        " AND NOT (o.id = ANY($2::text[])) AND ($3::text[] IS NULL OR o.webhook = ANY($3))"
        f" AND NOT (o.webhook = ANY($7::text[])) AND {_CLAIMABLE}"
        " ORDER BY o.next_attempt_at, o.id LIMIT $4 FOR UPDATE OF o SKIP LOCKED)")
#: For the ordered webhooks $3: per (webhook, room), the row whose event the ledger
#: numbered first, if due and no row of that room for that webhook is held by a live
#: claim. The lock re-checks the head's own claim, so two instances never both take it.
def _heads(webhooks: str) -> str:
    """A ``heads (webhook, seq)`` CTE over the ordered webhooks in parameter ``webhooks``."""
    return ("heads AS (SELECT o.webhook, min(o.event_seq) AS seq FROM notifier_outbox AS o"
            " JOIN notifier_events AS e ON e.seq = o.event_seq"
            f" WHERE o.webhook = ANY({webhooks}::text[])"
            f" GROUP BY o.webhook, e.room HAVING bool_and({_CLAIMABLE}))")


_HEADS = ("WITH " + _heads("$3") + ","
          " due AS (SELECT o.id FROM notifier_outbox AS o JOIN heads AS h"
          " ON h.webhook = o.webhook AND h.seq = o.event_seq WHERE o.next_attempt_at <= $1"
          f" AND NOT (o.id = ANY($2::text[])) AND {_CLAIMABLE}"
          " ORDER BY o.next_attempt_at, o.id LIMIT $4 FOR UPDATE OF o SKIP LOCKED)")
#: Marks the rows of ``due`` as claimed by $5 for $6 seconds and reads them with their
#: events (``select``'s columns, then next_attempt_at), oldest first.
_CLAIM = (f", claimed AS (UPDATE notifier_outbox AS t SET claimed_by = $5, claimed_until = {NOW}"
          " + $6 FROM due WHERE t.id = due.id RETURNING t.*) "
          + rows.select_deliveries("claimed", "t.next_attempt_at", events="notifier_events")
          + " ORDER BY t.next_attempt_at, t.id")
#: When the earliest unclaimed row of an unordered webhook, or head of an ordered one
#: (the webhooks in $1), becomes due.
NEXT_DUE = ("WITH " + _heads("$1") + " SELECT min(x) FROM ("
            "SELECT min(next_attempt_at) AS x FROM notifier_outbox"
            " WHERE claimed_by IS NULL AND NOT (webhook = ANY($1::text[])) UNION ALL"
            " SELECT min(o.next_attempt_at) FROM notifier_outbox AS o JOIN heads AS h"
            " ON h.webhook = o.webhook AND h.seq = o.event_seq WHERE o.claimed_by IS NULL) AS m")


async def load_room(conn: Any, room: str) -> RoomState | None:
    """The saved state of ``room``, or None when it was never tailed."""
    row = await conn.fetchrow(f"SELECT {rows.ROOM_COLUMNS} FROM notifier_rooms WHERE room = $1",
                              room)
    return RoomState(*row) if row else None


async def rooms(conn: Any) -> list[RoomState]:
    """Every room's saved state, by room."""
    return [RoomState(*row) for row in
            await conn.fetch(f"SELECT {rows.ROOM_COLUMNS} FROM notifier_rooms ORDER BY room")]


async def pending(conn: Any, limit: int) -> list[rows.OutboxEntry]:
    """Up to ``limit`` outbox deliveries, soonest first."""
    return rows.decode_outbox(await conn.fetch(
        select("notifier_outbox", "t.next_attempt_at", "t.last_status", "t.last_error")
        + " ORDER BY t.next_attempt_at, t.id LIMIT $1", limit))


async def delivered(conn: Any, ids: Sequence[str]) -> None:
    """Remove deliveries that received a 2xx."""
    await conn.execute("DELETE FROM notifier_outbox WHERE id = ANY($1::text[])", list(ids))


async def reschedule(conn: Any, delivery_id: str, attempts: int, next_attempt_at: float,
                     last_status: int | None, last_error: str, hold: float,
                     instance: str) -> None:
    """Record a failed attempt and hold the claim ``hold`` seconds more; not for a row
    another instance claimed meanwhile."""
    await conn.execute(
        "UPDATE notifier_outbox SET attempts = $2, next_attempt_at = $3,"
        f" last_status = $4, last_error = $5, claimed_until = {NOW} + $6"
        " WHERE id = $1 AND (claimed_by IS NULL OR claimed_by = $7)",
        delivery_id, attempts, next_attempt_at, last_status, last_error, hold, instance)


async def release(conn: Any, ids: Sequence[str], instance: str) -> None:
    """Give ``instance``'s claims on ``ids`` back to the outbox."""
    await conn.execute(
        "UPDATE notifier_outbox SET claimed_by = NULL, claimed_until = NULL"
        " WHERE id = ANY($1::text[]) AND claimed_by = $2", list(ids), instance)


async def release_claims(conn: Any, instance: str) -> None:
    """Give back every delivery ``instance`` claimed."""
    await conn.execute("UPDATE notifier_outbox SET claimed_by = NULL, claimed_until = NULL"
                       " WHERE claimed_by = $1", instance)


async def prune(conn: Any, older_than: float) -> int:
    """Forget ledger entries detected before ``older_than`` that nothing refers to."""
    status = await conn.execute(rows.prune_ledger("notifier_", "$1"), older_than)
    return int(status.split()[-1])


async def stats(conn: Any) -> StoreStats:
    """Outbox depth, dead letters, rooms known, messages quarantined (one snapshot)."""
    return StoreStats(*await conn.fetchrow(rows.store_stats("notifier_")))
