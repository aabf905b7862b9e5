"""SQLiteStore: the embedded state store, one SQLite file (WAL, synchronous=FULL).

All database work runs on one thread that owns the connection (``sqlite.thread``), one
hop per method call, so the event loop never waits on a disk flush and SQLite's locking
stays simple.
Only the runner opens the file ``exclusive``ly (an advisory lock on ``<path>.lock``);
inspection commands open it alongside the runner, and SQLite's own locks keep their writes
apart.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import TypeVar

from notifier.errors import StoreError
from notifier.events import Delivery
from notifier.store.base import DeadLetter, Quarantined, RoomState, Store, StoreStats, WebhookState
from notifier.store.rows import OutboxEntry, StateDump, decode_deliveries
from notifier.store.sqlite import dead_letters, outbox, quarantine
from notifier.store.sqlite.files import check_same, lock, prepare_files
from notifier.store.sqlite.locking import StateConnection
from notifier.store.sqlite.schema import describe, dump, prepare
from notifier.store.sqlite.thread import StoreThread

__all__ = ["SQLiteStore"]

T = TypeVar("T")


class SQLiteStore(Store):
    """The Store kept in one SQLite file."""

    def __init__(self, path: str, *, instance: str = "local", exclusive: bool = False,
                 busy_timeout: float = 5.0) -> None:
        self.path = path
        self.instance = instance
        self.exclusive = exclusive
        """Hold ``<path>.lock`` while open, and clear claims left by a crashed runner."""
        self.busy_timeout = busy_timeout
        """Seconds to wait for another process's write lock before giving up."""
        self._thread: StoreThread | None = None
        self._conn: StateConnection | None = None
        self._lock_fd: int | None = None

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def open(self) -> None:
        """Create or check the schema; refuse a corrupt or foreign file with StoreError."""
        if self._thread is not None:
            return
        self._thread = StoreThread()
        try:
            await self._thread.call(self._connect)
        except BaseException:
            await self.close()  # queued after _connect: closes what it opened, even if cancelled
            raise

    async def close(self) -> None:
        """Close the connection on its thread and release the lock; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:  # work queued before close() still runs first: the thread is first in, first out
            await thread.call(self._disconnect)
        finally:
            thread.stop()

    async def load_room(self, room: str) -> RoomState | None:
        """The saved state of ``room``, or None when it was never tailed."""
        return await self._run("loading room", lambda c: outbox.load_room(c, room))

    async def commit(self, state: RoomState | None,
                     deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Atomically save ``state`` (if given) and the deliveries of events not yet in
        the ledger; return the deliveries actually added to the outbox."""
        return (await self.commit_page(state, deliveries, ()))[0]

    async def commit_page(self, state: RoomState | None, deliveries: Sequence[Delivery],
                          quarantine: Sequence[Quarantined], *,
                          claimed: Collection[str] = ()) -> tuple[list[Delivery], int]:
        """``commit``, keeping the page's quarantined messages in the same transaction; the
        deliveries whose ids are in ``claimed`` are added claimed by this instance."""
        batch, kept, mine = list(deliveries), list(quarantine), frozenset(claimed)
        return await self._run("commit", lambda c: outbox.commit_page(
            c, state, batch, kept, time.time(), mine, self.instance))

    async def claim_due(self, now: float, limit: int, exclude: frozenset[str] = frozenset(),
                        webhooks: Collection[str] | None = None,
                        ordered: Collection[str] = ()) -> list[Delivery]:
        """Up to ``limit`` outbox deliveries due at ``now``, oldest first, not in ``exclude``,
        for ``webhooks`` only (None: every webhook), marked as claimed by this instance;
        only each room's head for a webhook in ``ordered`` (see Store.claim_due)."""
        lanes = None if webhooks is None else list(webhooks)
        in_order = frozenset(ordered)
        rows = await self._run("claiming deliveries", lambda c: outbox.claim(
            c, now, limit, exclude, lanes, self.instance, in_order))
        return decode_deliveries(rows)

    async def next_due(self, ordered: Collection[str] = ()) -> float | None:
        """When the earliest unclaimed outbox delivery becomes due, or None if empty
        (for a webhook in ``ordered``: the earliest claimable head)."""
        lanes = list(ordered)
        return await self._run("reading the outbox", lambda c: outbox.next_due(c, lanes))

    async def delivered(self, ids: Sequence[str]) -> None:
        """Remove deliveries that received a 2xx."""
        batch = list(ids)
        await self._run("recording deliveries", lambda c: outbox.delivered(c, batch))

    async def reschedule(self, delivery_id: str, attempts: int, next_attempt_at: float,
                         last_status: int | None, last_error: str) -> None:
        """Record a failed attempt and when the next one is due; the claim is kept."""
        await self._run("rescheduling a delivery", lambda c: outbox.reschedule(
            c, delivery_id, attempts, next_attempt_at, last_status, last_error))

    async def release(self, ids: Sequence[str]) -> None:
        """Give claimed deliveries back to the outbox (shutdown, lost lease)."""
        batch = list(ids)
        await self._run("releasing deliveries", lambda c: outbox.release(c, batch))

    async def release_claims(self, instance: str) -> None:
        """Give back every delivery ``instance`` claimed (a delivery worker that exited)."""
        await self._run("releasing deliveries",
                        lambda c: outbox.release_claims(c, instance))

    async def dead_letter(self, delivery_id: str, attempts: int, last_status: int | None,
                          last_error: str) -> None:
        """Move a delivery from the outbox to the dead letters (no-op if not there)."""
        await self._run("dead-lettering a delivery", lambda c: dead_letters.dead_letter(
            c, delivery_id, attempts, last_status, last_error, time.time()))

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        return await self._run("reading dead letters", dead_letters.dead_letters)

    async def prune(self, older_than: float) -> int:
        """Forget ledger entries detected before ``older_than`` that nothing refers to."""
        return await self._run("pruning the ledger", lambda c: outbox.prune(c, older_than))

    async def stats(self) -> StoreStats:
        """Outbox depth, dead letters, rooms known, messages quarantined (one snapshot)."""
        return await self._run("reading stats", outbox.stats)

    async def rooms(self) -> list[RoomState]:
        """Every room's saved state, by room."""
        return await self._run("reading rooms", outbox.rooms)

    async def outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """Pending deliveries, soonest first, as (delivery, next_attempt_at, last_status,
        last_error)."""
        return await self._run("reading the outbox", lambda c: outbox.pending(c, limit))

    async def requeue_dead_letters(self, ids: Sequence[str], now: float) -> int:
        """Move these dead letters back to the outbox, due at ``now``, attempts reset."""
        batch = list(ids)
        return await self._run("requeueing dead letters",
                               lambda c: dead_letters.requeue_dead_letters(c, batch, now))

    async def purge_dead_letters(self, ids: Sequence[str]) -> int:
        """Delete these dead letters; return how many were deleted."""
        batch = list(ids)
        return await self._run("purging dead letters",
                               lambda c: dead_letters.purge_dead_letters(c, batch))

    async def requeue(self, deliveries: Sequence[Delivery], now: float) -> int:
        """Enqueue ``deliveries`` even when the ledger knows their events (replay)."""
        batch = list(deliveries)
        return await self._run("replaying deliveries",
                               lambda c: dead_letters.requeue(c, batch, now))

    async def webhook_states(self) -> dict[str, WebhookState]:
        """Every saved webhook state, by webhook name."""
        return await self._run("reading webhook states", dead_letters.webhook_states)

    async def save_webhook_state(self, state: WebhookState) -> None:
        """Insert or replace the saved state of ``state.webhook``."""
        await self._run("saving a webhook state",
                        lambda c: dead_letters.save_webhook_state(c, state, time.time()))

    async def quarantined(self, limit: int | None = None) -> list[Quarantined]:
        """Kept messages, oldest first (the newest ``limit`` when given)."""
        return await self._run("reading the quarantine", lambda c: quarantine.select(c, limit))

    async def remove_quarantined(self, ids: Sequence[int]) -> int:
        """Forget kept messages (replayed or purged); return how many were removed."""
        batch = list(ids)
        return await self._run("removing quarantined messages",
                               lambda c: quarantine.remove(c, batch))

    async def dump(self) -> StateDump:
        """The whole state, read in one snapshot (``notifier state migrate`` copies it)."""
        return await self._run("reading the state file", dump)

    async def _run(self, what: str, fn: Callable[[StateConnection], T]) -> T:
        """Run ``fn`` on the worker thread; an SQLite error becomes a StoreError."""
        if self._thread is None:
            raise StoreError(f"state file {self.path} is not open (call open() first)")
        return await self._thread.call(self._call, what, fn)

    # The methods below run on the worker thread, the only one that touches _conn.

    def _call(self, what: str, fn: Callable[[StateConnection], T]) -> T:
        if self._conn is None:
            raise StoreError(f"state file {self.path} is not open (call open() first)")
        return self._guarded(what, fn, self._conn)

    def _guarded(self, what: str, fn: Callable[[StateConnection], T],
                 conn: StateConnection) -> T:
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            reason = describe(exc, self.path, self.busy_timeout)
            raise StoreError(f"{what} failed: {reason}") from exc

    def _connect(self) -> None:
        in_memory = self.path == ":memory:"  # SQLite's own name: no file, nothing to lock
        directory = os.path.dirname(os.path.abspath(self.path))
        if not in_memory and not os.path.isdir(directory):
            raise StoreError(f"cannot open state file {self.path}: directory {directory} "
                             "does not exist; create it or point `state` elsewhere")
        if self.exclusive and not in_memory:
            self._lock_fd = lock(self.path)
        try:
            identity = None if in_memory else prepare_files(self.path, tighten=self.exclusive)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False, factory=StateConnection)
        except sqlite3.Error as exc:
            raise StoreError(describe(exc, self.path, self.busy_timeout)) from exc
        try:
            if identity is not None:  # before anything is written through conn
                check_same(self.path, identity)
            self._guarded("opening", lambda c: prepare(c, self.path, self.busy_timeout), conn)
            if self.exclusive:  # claims belong to a live runner, and this is the only one
                self._guarded("clearing stale claims", outbox.clear_claims, conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                self._guarded("closing", lambda c: c.close(), conn)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

