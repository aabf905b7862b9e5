"""The PostgreSQL schema, its versioned migrations, and the copy of a whole state (a
StateDump) into the database.

Migrations run in one transaction under ``pg_advisory_xact_lock``, so several instances
starting together migrate once: the others wait for the lock, then find the schema at
the current version. A database whose ``notifier_meta`` names a newer version is refused.
"""

from __future__ import annotations

from typing import Any

from notifier.errors import StoreError
from notifier.store.base import safe_url  # re-exported: this was its home before base
from notifier.store.postgres import quarantine
from notifier.store.rows import ROOM_COLUMNS, StateDump, Transfer

__all__ = ["APPLICATION", "MIGRATIONS", "NOW", "SCHEMA_VERSION", "merge", "migrate", "safe_url"]

APPLICATION = "roomlio-notifier"
#: The database's clock, in unix seconds: what leases and claims are timed by.
NOW = "extract(epoch from clock_timestamp())::float8"
#: The advisory lock key taken while migrating ("RNOT" as an integer).
MIGRATION_LOCK = 0x524E4F54

#: ``MIGRATIONS[n]`` takes a database from schema version ``n`` to ``n + 1``.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE notifier_rooms (
            room TEXT PRIMARY KEY, cursor TEXT, last_id TEXT, high_water TEXT,
            updated_at DOUBLE PRECISION NOT NULL)""",
        # The message is kept as JSON text, not jsonb: jsonb would reorder keys and
        # round numbers beyond 64 bits, and the webhook must get the message as received.
        """CREATE TABLE notifier_events (
            seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            room TEXT NOT NULL, message TEXT NOT NULL, rules TEXT NOT NULL,
            detected_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX notifier_events_detected_at ON notifier_events (detected_at)",
        """CREATE TABLE notifier_outbox (
            id TEXT PRIMARY KEY, event_seq BIGINT NOT NULL REFERENCES notifier_events (seq),
            webhook TEXT NOT NULL, rules TEXT NOT NULL, attempts INTEGER NOT NULL,
            next_attempt_at DOUBLE PRECISION NOT NULL, claimed_by TEXT,
            claimed_until DOUBLE PRECISION, last_status INTEGER, last_error TEXT,
            created_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX notifier_outbox_due ON notifier_outbox (next_attempt_at, id)",
        "CREATE INDEX notifier_outbox_lane ON notifier_outbox (webhook, next_attempt_at, id)",
        "CREATE INDEX notifier_outbox_event ON notifier_outbox (event_seq)",
        """CREATE TABLE notifier_dead_letters (
            id TEXT PRIMARY KEY, event_seq BIGINT NOT NULL REFERENCES notifier_events (seq),
            webhook TEXT NOT NULL, rules TEXT NOT NULL, attempts INTEGER NOT NULL,
            last_status INTEGER, last_error TEXT NOT NULL,
            failed_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX notifier_dead_letters_event ON notifier_dead_letters (event_seq)",
        # Times in these two tables are the database's clock, never a host's: leases
        # must not depend on the hosts' clocks agreeing.
        """CREATE TABLE notifier_instances (
            id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
            started_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE notifier_leases (
            room TEXT PRIMARY KEY, owner TEXT, acquired_at DOUBLE PRECISION,
            expires_at DOUBLE PRECISION NOT NULL, fence BIGINT NOT NULL DEFAULT 0)""",
        "CREATE INDEX notifier_leases_owner ON notifier_leases (owner)",
    ),
    (
        # Delivery operations: each webhook's breaker, failure streak and disablement.
        """CREATE TABLE notifier_webhook_state (
            webhook TEXT PRIMARY KEY, breaker TEXT NOT NULL, opened_at DOUBLE PRECISION,
            failing_since DOUBLE PRECISION, last_success_at DOUBLE PRECISION,
            disabled_at DOUBLE PRECISION, disabled_reason TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX notifier_dead_letters_failed_at ON notifier_dead_letters (failed_at)",
    ),
    (
        # Messages the tail could not process (see notifier.polling.quarantine).
        """CREATE TABLE notifier_quarantine (
            id BIGSERIAL PRIMARY KEY, room TEXT NOT NULL, fingerprint TEXT NOT NULL,
            message_id TEXT, position TEXT NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL,
            truncated BOOLEAN NOT NULL, quarantined_at DOUBLE PRECISION NOT NULL,
            UNIQUE (room, fingerprint))""",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

_META = "CREATE TABLE IF NOT EXISTS notifier_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


async def migrate(conn: Any, where: str) -> tuple[int, int]:
    """Bring the schema to SCHEMA_VERSION; return (version found, version now)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(_META)
        rows = dict(await conn.fetch("SELECT key, value FROM notifier_meta"))
        if rows and rows.get("application") != APPLICATION:
            raise StoreError(f"{where} holds a notifier_meta table that is not "
                             f"{APPLICATION}'s; use another database")
        found = int(rows.get("schema_version", "0"))
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"{where} was written by a newer notifier (schema version {found}, this one "
                f"knows up to {SCHEMA_VERSION}); upgrade the notifier")
        for migration in MIGRATIONS[found:]:
            for statement in migration:
                await conn.execute(statement)
        await conn.executemany(
            "INSERT INTO notifier_meta (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))])
    return found, SCHEMA_VERSION


async def merge(conn: Any, dump: StateDump) -> Transfer:
    """Add ``dump`` in one transaction, skipping what the database has: an event already in
    its ledger (with the dump's outbox rows and dead letters of that event), a room it
    tails (its cursor is kept), a message it keeps already."""
    async with conn.transaction():
        inserted = await conn.fetch(
            "INSERT INTO notifier_events (id, kind, room, message, rules, detected_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::float8[]) ON CONFLICT (id) DO NOTHING RETURNING id, seq",
            *([row[i] for row in dump.events] for i in range(1, 7)))
        new_seq = {r["id"]: r["seq"] for r in inserted}
        seq_of = {row[0]: new_seq.get(row[1]) for row in dump.events}  # old seq -> new seq
        outbox = [(r[0], seq_of[r[1]], *r[2:]) for r in dump.outbox if seq_of.get(r[1])]
        await conn.executemany(
            "INSERT INTO notifier_outbox (id, event_seq, webhook, rules, attempts,"
            " next_attempt_at, last_status, last_error, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING", outbox)
        dead = [(r[0], seq_of[r[1]], *r[2:]) for r in dump.dead_letters if seq_of.get(r[1])]
        await conn.executemany(
            "INSERT INTO notifier_dead_letters (id, event_seq, webhook, rules, attempts,"
            " last_status, last_error, failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (id) DO NOTHING", dead)
        rooms = await conn.fetch(
            f"INSERT INTO notifier_rooms ({ROOM_COLUMNS}, updated_at) SELECT * FROM unnest("
            "$1::text[], $2::text[], $3::text[], $4::text[], $5::float8[])"
            " ON CONFLICT (room) DO NOTHING RETURNING room",
            *([row[i] for row in dump.rooms] for i in range(5)))
        kept = [(*r[:6], bool(r[6]), r[7]) for r in dump.quarantine]
        quarantined = await conn.fetch(quarantine.INSERT, *([r[i] for r in kept]
                                                            for i in range(8)))
    return Transfer(len(rooms), len(new_seq), len(outbox), len(dead),
                    len(dump.events) - len(new_seq), len(quarantined))
