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
from notifier.store.base import DeadLetter, Quarantined, RoomState, Store, StoreStats, WebhookState
from notifier.store.postgres import dead_letters, leases, outbox, quarantine
from notifier.store.postgres.schema import merge, migrate, safe_url
from notifier.store.rows import OutboxEntry, StateDump, Transfer, decode_deliveries

__all__ = ["PostgresStore"]

log = logging.getLogger("notifier.store")

#: What a lost or restarting server raises (InternalClientError: a connection broken
#: mid-statement); each becomes a StoreError, and the pool replaces the connection.
_CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError,
                      asyncpg.exceptions.InternalClientError, OSError, TimeoutError)


class PostgresStore(Store):
    """The Store kept in a PostgreSQL database (tables prefixed ``notifier_``)."""

    def __init__(self, url: str, *, instance: str = "local", exclusive: bool = False,
                 pool_size: int = 8, claim_timeout: float = 300.0,
                 command_timeout: float = 30.0, lease_ttl: float = 30.0) -> None:
        self.url = url
        self.where = safe_url(url)
        """The URL without its password: the only form that appears in messages."""
        self.instance = instance
        self.exclusive = exclusive
        """A runner: its commits are fenced by room leases."""
        self.pool_size = pool_size
        self.claim_timeout = claim_timeout
        self.command_timeout = command_timeout
        self.lease_ttl = lease_ttl
        """How long PostgreSQL lets a session of ours sit idle inside a transaction: a
        frozen instance (SIGSTOP, a paused VM) caught mid-commit holds its room's lease row
        FOR SHARE, and the instance taking the room over skips that row (SKIP LOCKED) until
        the server ends the frozen session's transaction."""
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
                command_timeout=self.command_timeout, timeout=self.command_timeout,
                server_settings={"idle_in_transaction_session_timeout":
                                 str(max(1, int(self.lease_ttl * 1000)))})
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
            return await outbox.load_room(conn, room)

    async def commit(self, state: RoomState | None,
                     deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Atomically save ``state`` and new deliveries; a runner only while it holds the
        room's lease (else LeaseLost, and nothing is written)."""
        return (await self.commit_page(state, deliveries, ()))[0]

    async def commit_page(self, state: RoomState | None, deliveries: Sequence[Delivery],
                          quarantine: Sequence[Quarantined], *,
                          claimed: Collection[str] = ()) -> tuple[list[Delivery], int]:
        """``commit``, keeping the page's quarantined messages in the same transaction; the
        deliveries whose ids are in ``claimed`` are added claimed by this instance for
        ``claim_timeout`` seconds (or until its registration lapses), as a claim marks them."""
        fence = self.instance if self.exclusive else None
        claim = outbox.Claim(self.instance, self.claim_timeout, frozenset(claimed))
        async with self._conn("commit") as conn:
            return await outbox.commit(conn, state, list(deliveries), time.time(), fence,
                                       list(quarantine), claim)

    async def claim_due(self, now: float, limit: int, exclude: frozenset[str] = frozenset(),
                        webhooks: Collection[str] | None = None,
                        ordered: Collection[str] = ()) -> list[Delivery]:
        """Up to ``limit`` due deliveries no live instance holds, oldest first, claimed
        (``SKIP LOCKED``: instances draining together never take the same row); only
        each room's head for a webhook in ``ordered`` (see Store.claim_due)."""
        async with self._conn("claiming deliveries") as conn:
            rows = await outbox.claim(conn, now, limit, exclude, webhooks, self.instance,
                                      self.claim_timeout, ordered)
        return decode_deliveries(rows)

    async def next_due(self, ordered: Collection[str] = ()) -> float | None:
        """When the earliest unclaimed outbox delivery becomes due, or None if empty
        (for a webhook in ``ordered``: the earliest claimable head)."""
        async with self._conn("reading the outbox") as conn:
            due: float | None = await conn.fetchval(outbox.NEXT_DUE, list(ordered))
        return due

    async def delivered(self, ids: Sequence[str]) -> None:
        """Remove deliveries that received a 2xx."""
        async with self._conn("recording deliveries") as conn:
            await outbox.delivered(conn, ids)

    async def reschedule(self, delivery_id: str, attempts: int, next_attempt_at: float,
                         last_status: int | None, last_error: str) -> None:
        """Record a failed attempt; the claim is kept (and extended past the next one)."""
        hold = max(0.0, next_attempt_at - time.time()) + self.claim_timeout
        async with self._conn("rescheduling a delivery") as conn:
            await outbox.reschedule(conn, delivery_id, attempts, next_attempt_at,
                                    last_status, last_error, hold, self.instance)

    async def release(self, ids: Sequence[str]) -> None:
        """Give this instance's claims on ``ids`` back to the outbox."""
        async with self._conn("releasing deliveries") as conn:
            await outbox.release(conn, ids, self.instance)

    async def release_claims(self, instance: str) -> None:
        """Give back every delivery ``instance`` claimed."""
        async with self._conn("releasing deliveries") as conn:
            await outbox.release_claims(conn, instance)

    async def dead_letter(self, delivery_id: str, attempts: int, last_status: int | None,
                          last_error: str) -> None:
        """Move a delivery from the outbox to the dead letters (no-op if not there or
        claimed by another instance)."""
        async with self._conn("dead-lettering a delivery") as conn:
            await dead_letters.dead_letter(conn, delivery_id, attempts, last_status,
                                           last_error, time.time(), self.instance)

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        async with self._conn("reading dead letters") as conn:
            return await dead_letters.dead_letters(conn)

    async def prune(self, older_than: float) -> int:
        """Forget ledger entries detected before ``older_than`` that nothing refers to."""
        async with self._conn("pruning the ledger") as conn:
            return await outbox.prune(conn, older_than)

    async def stats(self) -> StoreStats:
        """Outbox depth, dead letters, rooms known, messages quarantined (one snapshot)."""
        async with self._conn("reading stats") as conn:
            return await outbox.stats(conn)

    async def rooms(self) -> list[RoomState]:
        """Every room's saved state, by room."""
        async with self._conn("reading rooms") as conn:
            return await outbox.rooms(conn)

    async def outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """Pending deliveries, soonest first, as (delivery, next_attempt_at, last_status,
        last_error)."""
        async with self._conn("reading the outbox") as conn:
            return await outbox.pending(conn, limit)

    async def requeue_dead_letters(self, ids: Sequence[str], now: float) -> int:
        """Move dead letters back to the outbox, unclaimed, due at ``now``, 0 attempts."""
        async with self._conn("replaying dead letters") as conn:
            return await dead_letters.requeue_dead_letters(conn, ids, now)

    async def purge_dead_letters(self, ids: Sequence[str]) -> int:
        """Delete dead letters; return how many were deleted."""
        async with self._conn("purging dead letters") as conn:
            return await dead_letters.purge_dead_letters(conn, ids)

    async def requeue(self, deliveries: Sequence[Delivery], now: float) -> int:
        """Enqueue deliveries whether or not the ledger knows their events (replay)."""
        async with self._conn("requeueing deliveries") as conn:
            return await dead_letters.requeue(conn, deliveries, now)

    async def webhook_states(self) -> dict[str, WebhookState]:
        """Every saved webhook state, by name."""
        async with self._conn("reading webhook states") as conn:
            return await dead_letters.webhook_states(conn)

    async def save_webhook_state(self, state: WebhookState) -> None:
        """Insert or replace the saved state of ``state.webhook``."""
        async with self._conn("saving a webhook state") as conn:
            await dead_letters.save_webhook_state(conn, state, time.time())

    async def quarantined(self, limit: int | None = None) -> list[Quarantined]:
        """Kept messages, oldest first (the newest ``limit`` when given)."""
        async with self._conn("reading the quarantine") as conn:
            return await quarantine.select(conn, limit)

    async def remove_quarantined(self, ids: Sequence[int]) -> int:
        """Forget kept messages (replayed or purged); return how many were removed."""
        async with self._conn("removing quarantined messages") as conn:
            return await quarantine.remove(conn, ids)

    async def merge(self, dump: StateDump) -> Transfer:
        """Copy a whole state in, in one transaction, skipping what this database has
        already (see schema.merge)."""
        async with self._conn("copying the state") as conn:
            return await merge(conn, dump)

    # --- leases (notifier.polling.leases.LeaseStore) --------------------------------------

    async def heartbeat(self, ttl: float) -> tuple[set[str], int]:
        """Register or renew this instance and its leases: (rooms held, live instances)."""
        async with self._conn("renewing leases") as conn:
            return await leases.heartbeat(conn, self.instance, socket.gethostname(),
                                          os.getpid(), ttl)

    async def claim_rooms(self, rooms: Sequence[str], limit: int, ttl: float) -> list[str]:
        """Take up to ``limit`` of ``rooms`` that no live instance holds."""
        async with self._conn("claiming rooms") as conn:
            return await leases.claim_rooms(conn, self.instance, rooms, limit, ttl)

    async def release_rooms(self, rooms: Collection[str]) -> None:
        """Give up this instance's leases on ``rooms`` (its tailers there have stopped)."""
        async with self._conn("releasing rooms") as conn:
            await leases.release_rooms(conn, self.instance, rooms)

    async def leave(self) -> None:
        """Release every lease of this instance and unregister it (deliveries still in
        flight keep their claims: the sender releases them when it stops)."""
        async with self._conn("leaving the cluster") as conn:
            await leases.leave(conn, self.instance)

    async def cluster(self) -> tuple[float, list[Any], list[Any]]:
        """(database now, instances, leases) for ``notifier status``."""
        async with self._conn("reading the cluster") as conn:
            return await leases.cluster(conn)


def _reason(exc: BaseException) -> str:
    """What went wrong, without the URL (asyncpg never puts the password in messages)."""
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
