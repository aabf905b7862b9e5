"""Move a SQLite state file into a PostgreSQL database: cursors, ledger, outbox, dead letters,
quarantined messages.

The SQLite file is opened exclusively, so no runner can change it meanwhile, and everything
is written to PostgreSQL in one transaction. Nothing is lost or doubled, even when run
twice: events already in the target's ledger are skipped together with their outbox rows
and dead letters (they belong to the target's own history), and a room the target already
tails keeps the target's cursor.
"""

from __future__ import annotations

from notifier.store.postgres import PostgresStore
from notifier.store.rows import Transfer
from notifier.store.sqlite import SQLiteStore

__all__ = ["Transfer", "sqlite_to_postgres"]


async def sqlite_to_postgres(source: str, target: str) -> Transfer:
    """Copy the state file ``source`` into the database at ``target`` (created or migrated)."""
    async with SQLiteStore(source, exclusive=True) as sqlite:
        dump = await sqlite.dump()
        async with PostgresStore(target, instance="state-migrate") as pg:
            return await pg.merge(dump)
