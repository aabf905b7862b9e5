"""Move a SQLite state file into a PostgreSQL database: cursors, ledger, outbox, dead letters,
quarantined messages.

The SQLite file is opened exclusively, so no runner can change it meanwhile, and everything
is written to PostgreSQL in one transaction. Nothing is lost or doubled, even when run
twice: events already in the target's ledger are skipped together with their outbox rows
and dead letters (they belong to the target's own history), and a room the target already
tails keeps the target's cursor.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from notifier.store.postgres import PostgresStore
from notifier.store.quarantine import PG_INSERT
from notifier.store.sqlite import SQLiteStore
from notifier.store.sqlite.schema import transaction

__all__ = ["Transfer", "sqlite_to_postgres"]

_EVENTS = "SELECT seq, id, kind, room, message, rules, detected_at FROM events ORDER BY seq"
_OUTBOX = ("SELECT id, event_seq, webhook, rules, attempts, next_attempt_at, last_status,"
           " last_error, created_at FROM outbox ORDER BY next_attempt_at, id")
_DEAD = ("SELECT id, event_seq, webhook, rules, attempts, last_status, last_error, failed_at"
         " FROM dead_letters ORDER BY failed_at, id")
_ROOMS = "SELECT room, cursor, last_id, high_water, updated_at FROM rooms ORDER BY room"
_QUARANTINE = ("SELECT room, fingerprint, message_id, position, reason, raw, truncated,"
               " quarantined_at FROM quarantine ORDER BY id")


@dataclass(frozen=True, slots=True)
class Transfer:
    """What was copied (and what the target already had)."""

    rooms: int
    events: int
    outbox: int
    dead_letters: int
    skipped_events: int
    quarantined: int = 0


def _dump(conn: sqlite3.Connection) -> dict[str, list[Any]]:
    with transaction(conn):  # one consistent snapshot
        return {name: conn.execute(sql).fetchall() for name, sql in
                (("events", _EVENTS), ("outbox", _OUTBOX), ("dead", _DEAD), ("rooms", _ROOMS),
                 ("quarantine", _QUARANTINE))}


async def sqlite_to_postgres(source: str, target: str) -> Transfer:
    """Copy the state file ``source`` into the database at ``target`` (created or migrated)."""
    async with SQLiteStore(source, exclusive=True) as sqlite:
        data = await sqlite._run("reading the state file", _dump)
        async with PostgresStore(target, instance="state-migrate") as pg, \
                pg._conn("copying the state") as conn, conn.transaction():
            return await _write(conn, data)


async def _write(conn: Any, data: dict[str, list[Any]]) -> Transfer:
    inserted = await conn.fetch(
        "INSERT INTO notifier_events (id, kind, room, message, rules, detected_at)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::float8[]) ON CONFLICT (id) DO NOTHING RETURNING id, seq",
        *([row[i] for row in data["events"]] for i in range(1, 7)))
    new_seq = {r["id"]: r["seq"] for r in inserted}
    seq_of = {row[0]: new_seq.get(row[1]) for row in data["events"]}  # old seq -> new seq
    outbox = [(r[0], seq_of[r[1]], *r[2:]) for r in data["outbox"] if seq_of.get(r[1])]
    await conn.executemany(
        "INSERT INTO notifier_outbox (id, event_seq, webhook, rules, attempts, next_attempt_at,"
        " last_status, last_error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (id) DO NOTHING", outbox)
    dead = [(r[0], seq_of[r[1]], *r[2:]) for r in data["dead"] if seq_of.get(r[1])]
    await conn.executemany(
        "INSERT INTO notifier_dead_letters (id, event_seq, webhook, rules, attempts,"
        " last_status, last_error, failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (id) DO NOTHING", dead)
    rooms = await conn.fetch(
        "INSERT INTO notifier_rooms (room, cursor, last_id, high_water, updated_at)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[])"
        " ON CONFLICT (room) DO NOTHING RETURNING room",
        *([row[i] for row in data["rooms"]] for i in range(5)))
    kept = [(*r[:6], bool(r[6]), r[7]) for r in data["quarantine"]]
    quarantined = await conn.fetch(PG_INSERT, *([r[i] for r in kept] for i in range(8)))
    return Transfer(len(rooms), len(new_seq), len(outbox), len(dead),
                    len(data["events"]) - len(new_seq), len(quarantined))
