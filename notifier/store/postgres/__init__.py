"""PostgresStore: the shared state of several instances, on an asyncpg connection pool.

Same contract as SQLiteStore, plus what several instances need: room leases (claimed
with ``FOR UPDATE SKIP LOCKED``, renewed by a heartbeat, fenced: a runner's commit for a
room whose lease it no longer holds is refused with LeaseLost), and an outbox any
instance can drain (claims lapse after ``claim_timeout``, or at once when the claiming
instance stops renewing its registration). A broken connection is replaced on the next
call, so a database restart costs failed calls, not the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from notifier.errors import StoreError
from notifier.events import Delivery
from notifier.store.base import DeadLetter, Quarantined, RoomState, StoreStats
from notifier.store.postgres import rows as ops
from notifier.store.postgres.admin import AdminOps
from notifier.store.postgres.schema import migrate, safe_url
from notifier.store.quarantine import PostgresQuarantine
from notifier.store.sqlite.rows import deliveries

__all__ = ["PostgresStore"]

log = logging.getLogger("notifier.store")

#: What a lost or restarting server raises (InternalClientError: a connection broken
#: mid-statement); each becomes a StoreError, and the pool replaces the connection.
_CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError,
                      asyncpg.exceptions.InternalClientError, OSError, TimeoutError)


class PostgresStore(AdminOps, PostgresQuarantine):
    """The Store kept in a PostgreSQL database (tables prefixed ``notifier_``)."""

    def __init__(self, url: str, *, instance: str = "local", exclusive: bool = False,
                 pool_size: int = 8, claim_timeout: float = 300.0,
                 command_timeout: float = 30.0) -> None:
        self.url = url
        self.where = safe_url(url)
        """The URL without its password: the only form that appears in messages."""
        self.instance = instance
        self.exclusive = exclusive
        """A runner: its commits are fenced by room leases."""
        self.pool_size = pool_size
        self.claim_timeout = claim_timeout
        self.command_timeout = command_timeout
        self.schema_version: tuple[int, int] | None = None
        """(version found, version now) after open()."""
        self._pool: Any = None

    async def open(self) -> None:
        """Connect, then create or migrate the schema (safe when several start together)."""
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size,
                command_timeout=self.command_timeout, timeout=self.command_timeout)
        except _CONNECTION_ERRORS as exc:
            raise StoreError(f"cannot connect to {self.where}: {_reason(exc)}") from None
        try:
            async with self._conn("migrating the schema") as conn:
                self.schema_version = found, now = await migrate(conn, self.where)
            log.info("state %s: schema version %d%s", self.where, now,
                     f" (migrated from {found})" if found != now else "")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await asyncio.wait_for(pool.close(), timeout=10)

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _conn(self, what: str) -> AsyncIterator[Any]:
        """A pooled connection; any database failure inside becomes a StoreError."""
        if self._pool is None:
            raise StoreError(f"state database {self.where} is not open (call open() first)")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except StoreError:
            raise
        except _CONNECTION_ERRORS as exc:
            raise StoreError(f"{what} failed ({self.where}): {_reason(exc)}") from None

    # --- the Store contract ---------------------------------------------------------------

    async def load_room(self, room: str) -> RoomState | None:
        """The saved state of ``room``, or None when it was never tailed."""
        async with self._conn("loading room") as conn:
            row = await conn.fetchrow("SELECT room, cursor, last_id, high_water"
                                      " FROM notifier_rooms WHERE room = $1", room)
        return RoomState(*row) if row else None

    async def commit(self, state: RoomState | None,
                     deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Atomically save ``state`` and new deliveries; a runner only while it holds the
        room's lease (else LeaseLost, and nothing is written)."""
        return (await self.commit_page(state, deliveries, ()))[0]

    async def commit_page(self, state: RoomState | None, deliveries: Sequence[Delivery],
                          quarantine: Sequence[Quarantined]) -> tuple[list[Delivery], int]:
        """``commit``, keeping the page's quarantined messages in the same transaction."""
        fence = self.instance if self.exclusive else None
        async with self._conn("commit") as conn:
            return await ops.commit(conn, state, list(deliveries), time.time(), fence,
                                    list(quarantine))

    async def claim_due(self, now: float, limit: int, exclude: frozenset[str] = frozenset(),
                        webhooks: Collection[str] | None = None,
                        ordered: Collection[str] = ()) -> list[Delivery]:
        """Up to ``limit`` due deliveries no live instance holds, oldest first, claimed
        (``SKIP LOCKED``: instances draining together never take the same row); only
        each room's head for a webhook in ``ordered`` (see Store.claim_due)."""
        async with self._conn("claiming deliveries") as conn:
            rows = await ops.claim(conn, now, limit, exclude, webhooks, self.instance,
                                   self.claim_timeout, ordered)
        return deliveries(rows)

    async def next_due(self, ordered: Collection[str] = ()) -> float | None:
        """When the earliest unclaimed outbox delivery becomes due, or None if empty
        (for a webhook in ``ordered``: the earliest claimable head)."""
        async with self._conn("reading the outbox") as conn:
            due: float | None = await conn.fetchval(ops.NEXT_DUE, list(ordered))
        return due

    async def delivered(self, ids: Sequence[str]) -> None:
        """Remove deliveries that received a 2xx."""
        async with self._conn("recording deliveries") as conn:
            await conn.execute("DELETE FROM notifier_outbox WHERE id = ANY($1::text[])",
                               list(ids))

    async def reschedule(self, delivery_id: str, attempts: int, next_attempt_at: float,
                         last_status: int | None, last_error: str) -> None:
        """Record a failed attempt; the claim is kept (and extended past the next one)."""
        hold = max(0.0, next_attempt_at - time.time()) + self.claim_timeout
        async with self._conn("rescheduling a delivery") as conn:
            await conn.execute(
                "UPDATE notifier_outbox SET attempts = $2, next_attempt_at = $3,"
                f" last_status = $4, last_error = $5, claimed_until = {ops.NOW} + $6"
                " WHERE id = $1 AND (claimed_by IS NULL OR claimed_by = $7)",
                delivery_id, attempts, next_attempt_at, last_status, last_error, hold,
                self.instance)

    async def release(self, ids: Sequence[str]) -> None:
        """Give this instance's claims on ``ids`` back to the outbox."""
        async with self._conn("releasing deliveries") as conn:
            await conn.execute(
                "UPDATE notifier_outbox SET claimed_by = NULL, claimed_until = NULL"
                " WHERE id = ANY($1::text[]) AND claimed_by = $2", list(ids), self.instance)

    async def release_claims(self, instance: str) -> None:
        """Give back every delivery ``instance`` claimed."""
        async with self._conn("releasing deliveries") as conn:
            await conn.execute(
                "UPDATE notifier_outbox SET claimed_by = NULL, claimed_until = NULL"
                " WHERE claimed_by = $1", instance)

    async def dead_letter(self, delivery_id: str, attempts: int, last_status: int | None,
                          last_error: str) -> None:
        """Move a delivery from the outbox to the dead letters (no-op if not there or
        claimed by another instance)."""
        async with self._conn("dead-lettering a delivery") as conn, conn.transaction():
            moved = await conn.fetch(
                "DELETE FROM notifier_outbox WHERE id = $1 AND (claimed_by IS NULL"
                " OR claimed_by = $2) RETURNING id, event_seq, webhook, rules",
                delivery_id, self.instance)
            await conn.executemany(
                "INSERT INTO notifier_dead_letters (id, event_seq, webhook, rules, attempts,"
                " last_status, last_error, failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (id) DO UPDATE SET attempts = excluded.attempts,"
                " last_status = excluded.last_status, last_error = excluded.last_error,"
                " failed_at = excluded.failed_at",
                [(*row, attempts, last_status, last_error, time.time()) for row in moved])

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        async with self._conn("reading dead letters") as conn:
            rows = await conn.fetch(ops.select_deliveries(
                "notifier_dead_letters", "t.last_status", "t.last_error", "t.failed_at")
                + " ORDER BY t.failed_at, t.id")
        return [DeadLetter(d, r[10], r[11], r[12])
                for d, r in zip(deliveries(rows), rows, strict=True)]

    async def prune(self, older_than: float) -> int:
        """Forget ledger entries detected before ``older_than`` that nothing refers to."""
        async with self._conn("pruning the ledger") as conn:
            status = await conn.execute(
                "DELETE FROM notifier_events AS e WHERE e.detected_at < $1"
                " AND NOT EXISTS (SELECT 1 FROM notifier_outbox WHERE event_seq = e.seq)"
                " AND NOT EXISTS (SELECT 1 FROM notifier_dead_letters WHERE event_seq = e.seq)",
                older_than)
        return int(status.split()[-1])

    async def stats(self) -> StoreStats:
        """Outbox depth, dead letters, rooms known, messages quarantined (one snapshot)."""
        async with self._conn("reading stats") as conn:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM notifier_outbox),"
                " (SELECT count(*) FROM notifier_dead_letters),"
                " (SELECT count(*) FROM notifier_rooms),"
                " (SELECT count(*) FROM notifier_quarantine)")
        return StoreStats(*row)

    async def rooms(self) -> list[RoomState]:
        """Every room's saved state, by room."""
        async with self._conn("reading rooms") as conn:
            rows = await conn.fetch("SELECT room, cursor, last_id, high_water"
                                    " FROM notifier_rooms ORDER BY room")
        return [RoomState(*row) for row in rows]

    async def outbox(self, limit: int = 100
                     ) -> list[tuple[Delivery, float, int | None, str | None]]:
        """Pending deliveries, soonest first, as (delivery, next_attempt_at, last_status,
        last_error)."""
        async with self._conn("reading the outbox") as conn:
            rows = await conn.fetch(ops.select_deliveries(
                "notifier_outbox", "t.next_attempt_at", "t.last_status", "t.last_error")
                + " ORDER BY t.next_attempt_at, t.id LIMIT $1", limit)
        return [(d, r[10], r[11], r[12]) for d, r in zip(deliveries(rows), rows, strict=True)]

    # --- leases (notifier.polling.leases.LeaseStore) --------------------------------------

    async def heartbeat(self, ttl: float) -> tuple[set[str], int]:
        """Register or renew this instance and its leases: (rooms held, live instances)."""
        async with self._conn("renewing leases") as conn:
            return await ops.heartbeat(conn, self.instance, socket.gethostname(),
                                       os.getpid(), ttl)

    async def claim_rooms(self, rooms: Sequence[str], limit: int, ttl: float) -> list[str]:
        """Take up to ``limit`` of ``rooms`` that no live instance holds."""
        async with self._conn("claiming rooms") as conn:
            return await ops.claim_rooms(conn, self.instance, rooms, limit, ttl)

    async def release_rooms(self, rooms: Collection[str]) -> None:
        """Give up this instance's leases on ``rooms`` (its tailers there have stopped)."""
        async with self._conn("releasing rooms") as conn:
            await conn.execute(
                "UPDATE notifier_leases SET owner = NULL, expires_at = 0"
                " WHERE owner = $1 AND room = ANY($2::text[])", self.instance, list(rooms))

    async def leave(self) -> None:
        """Release every lease of this instance and unregister it (deliveries still in
        flight keep their claims: the sender releases them when it stops)."""
        async with self._conn("leaving the cluster") as conn, conn.transaction():
            await conn.execute("UPDATE notifier_leases SET owner = NULL, expires_at = 0"
                               " WHERE owner = $1", self.instance)
            await conn.execute("DELETE FROM notifier_instances WHERE id = $1", self.instance)

    async def cluster(self) -> tuple[float, list[Any], list[Any]]:
        """(database now, instances, leases) for ``notifier status``."""
        async with self._conn("reading the cluster") as conn:
            now = await conn.fetchval(f"SELECT {ops.NOW}")
            instances = await conn.fetch("SELECT id, host, pid, started_at, expires_at"
                                         " FROM notifier_instances ORDER BY id")
            leases = await conn.fetch("SELECT room, owner, acquired_at, expires_at"
                                      " FROM notifier_leases WHERE owner IS NOT NULL"
                                      " ORDER BY owner, room")
        return now, list(instances), list(leases)


def _reason(exc: BaseException) -> str:
    """What went wrong, without the URL (asyncpg never puts the password in messages)."""
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
