"""SQLiteStore: the embedded state store, one SQLite file (WAL, synchronous=FULL).

All database work runs on one worker thread that owns the connection, one hop per method
call, so the event loop never waits on a disk flush and SQLite's locking stays simple.
Only the runner opens the file ``exclusive``ly (an advisory lock on ``<path>.lock``);
inspection commands open it alongside, and SQLite's own locks keep writes apart.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar, cast

from notifier.errors import StoreError
from notifier.events import Delivery, Event, EventKind
from notifier.store import DeadLetter, RoomState, StoreStats
from notifier.store._sqlite_schema import describe, prepare, transaction

try:
    import orjson
except ImportError:  # optional: only faster
    orjson = None  # type: ignore[assignment]

__all__ = ["SQLiteStore"]

T = TypeVar("T")
Row = tuple[Any, ...]



def _select_deliveries(table: str) -> str:
    """Columns 0-9 of every query that rebuilds a Delivery (see _deliveries)."""
    return ("SELECT t.id, t.webhook, t.rules, t.attempts,"
            " e.id, e.kind, e.room, e.message, e.rules, e.detected_at"
            f" FROM {table} AS t JOIN events AS e ON e.id = t.event_id")

_CHUNK = 500  # ids per IN (...) query, well below SQLite's bound-parameter limit


class SQLiteStore:
    """The Store kept in one SQLite file."""

    def __init__(self, path: str, *, instance: str = "local", exclusive: bool = False,
                 busy_timeout: float = 5.0) -> None:
        self.path = path
        self.instance = instance
        self.exclusive = exclusive
        """Hold ``<path>.lock`` while open and clear claims left by a crashed runner."""
        self.busy_timeout = busy_timeout
        """Seconds to wait for another process's write lock before giving up."""
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def open(self) -> None:
        """Create or check the schema; refuse a corrupt or foreign file with StoreError."""
        if self._executor is not None:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StoreError(f"cannot open state file {self.path}: directory {directory} "
                             "does not exist; create it or point `state` elsewhere")
        if self.exclusive:
            self._lock_fd = _lock(self.path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notifier-store")
        try:
            loop = asyncio.get_running_loop()
            self._conn = await loop.run_in_executor(self._executor, self._connect)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection on its thread and release the lock; idempotent."""
        executor, conn, self._executor, self._conn = self._executor, self._conn, None, None
        try:
            if executor is not None and conn is not None:
                await asyncio.get_running_loop().run_in_executor(
                    executor, self._guarded, "closing", _close, conn)
        finally:
            if executor is not None:
                executor.shutdown(wait=False)
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    async def load_room(self, room: str) -> RoomState | None:
        """The saved state of ``room``, or None when it was never tailed."""
        row = await self._run("loading room", lambda c: c.execute(
            "SELECT room, cursor, last_id, high_water FROM rooms WHERE room = ?",
            (room,)).fetchone())
        return RoomState(*row) if row else None

    async def commit(self, state: RoomState | None,
                     deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Atomically save ``state`` (if given) and the deliveries of events not yet in
        the ledger; return the deliveries actually added to the outbox."""
        deliveries = list(deliveries)
        return await self._run("commit", lambda c: _commit(c, state, deliveries, time.time()))

    async def claim_due(self, now: float, limit: int,
                        exclude: frozenset[str] = frozenset()) -> list[Delivery]:
        """Up to ``limit`` outbox deliveries due at ``now``, oldest first, not in ``exclude``,
        marked as claimed by this instance."""
        rows = await self._run("claiming deliveries",
                               lambda c: _claim(c, now, limit, exclude, self.instance))
        return _deliveries(rows)

    async def next_due(self) -> float | None:
        """When the earliest unclaimed outbox delivery becomes due, or None if empty."""
        row = await self._run("reading the outbox", lambda c: c.execute(
            "SELECT min(next_attempt_at) FROM outbox WHERE claimed_by IS NULL").fetchone())
        return cast(float | None, row[0])

    async def delivered(self, ids: Sequence[str]) -> None:
        """Remove deliveries that received a 2xx."""
        await self._run("recording deliveries", lambda c: _each(
            c, "DELETE FROM outbox WHERE id = ?", [(i,) for i in ids]))

    async def reschedule(self, delivery_id: str, attempts: int, next_attempt_at: float,
                         last_status: int | None, last_error: str) -> None:
        """Record a failed attempt and when the next one is due; the claim is kept."""
        await self._run("rescheduling a delivery", lambda c: c.execute(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_status = ?,"
            " last_error = ? WHERE id = ?",
            (attempts, next_attempt_at, last_status, last_error, delivery_id)))

    async def release(self, ids: Sequence[str]) -> None:
        """Give claimed deliveries back to the outbox (shutdown, lost lease)."""
        await self._run("releasing deliveries", lambda c: _each(
            c, "UPDATE outbox SET claimed_by = NULL WHERE id = ?", [(i,) for i in ids]))

    async def dead_letter(self, delivery_id: str, attempts: int, last_status: int | None,
                          last_error: str) -> None:
        """Move a delivery from the outbox to the dead letters (no-op if not there)."""
        await self._run("dead-lettering a delivery", lambda c: _dead_letter(
            c, delivery_id, attempts, last_status, last_error, time.time()))

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        rows = await self._run("reading dead letters", lambda c: c.execute(
            _select_deliveries("dead_letters").replace(
                " FROM", ", t.last_status, t.last_error, t.failed_at FROM", 1)
            + " ORDER BY t.failed_at, t.rowid").fetchall())
        return [DeadLetter(d, r[10], r[11], r[12]) for d, r in zip(_deliveries(rows), rows,
                                                                      strict=True)]

    async def prune(self, older_than: float) -> int:
        """Forget ledger entries detected before ``older_than`` that nothing refers to."""
        return await self._run("pruning the ledger", lambda c: c.execute(
            "DELETE FROM events WHERE detected_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM outbox WHERE event_id = events.id)"
            " AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_id = events.id)",
            (older_than,)).rowcount)

    async def stats(self) -> StoreStats:
        """Outbox depth, dead letters, rooms known (one consistent snapshot)."""
        row = await self._run("reading stats", lambda c: c.execute(
            "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM dead_letters),"
            " (SELECT count(*) FROM rooms)").fetchone())
        return StoreStats(*row)

    async def rooms(self) -> list[RoomState]:
        """Every room's saved state, by room."""
        rows = await self._run("reading rooms", lambda c: c.execute(
            "SELECT room, cursor, last_id, high_water FROM rooms ORDER BY room").fetchall())
        return [RoomState(*row) for row in rows]

    async def outbox(self, limit: int = 100
                     ) -> list[tuple[Delivery, float, int | None, str | None]]:
        """Pending deliveries, soonest first: (delivery, next_attempt_at, last_status,
        last_error)."""
        rows = await self._run("reading the outbox", lambda c: c.execute(
            _DELIVERY + ", o.next_attempt_at, o.last_status, o.last_error"
            " FROM outbox AS o JOIN events AS e ON e.id = o.event_id"
            " ORDER BY o.next_attempt_at, o.id LIMIT ?", (limit,)).fetchall())
        return [(d, r[10], r[11], r[12]) for d, r in zip(_deliveries(rows), rows, strict=True)]

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._conn is None:
            raise StoreError(f"state file {self.path} is not open (call open() first)")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._guarded, what, fn, self._conn)

    def _guarded(self, what: str, fn: Callable[[sqlite3.Connection], T],
                 conn: sqlite3.Connection) -> T:
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"{what} failed: {describe(exc, self.path, self.busy_timeout)}"
                             ) from exc

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(describe(exc, self.path, self.busy_timeout)) from exc
        try:
            self._guarded("opening", lambda c: prepare(c, self.path, self.busy_timeout), conn)
            if self.exclusive:  # claims belong to a live runner; this one is the only one
                self._guarded("clearing stale claims", lambda c: c.execute(
                    "UPDATE outbox SET claimed_by = NULL WHERE claimed_by IS NOT NULL"), conn)
        except BaseException:
            conn.close()
            raise
        return conn


def _lock(path: str) -> int:
    lock_path = path + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create lock file {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        if not isinstance(exc, BlockingIOError):
            raise StoreError(f"cannot lock {lock_path}: {exc.strerror}") from exc
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise StoreError(f"another notifier{pid} is already running with state file {path};"
                         " stop it first, or give this one its own `state` file") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _close(conn: sqlite3.Connection) -> None:
    conn.close()


def _each(conn: sqlite3.Connection, sql: str, params: list[Row]) -> None:
    if params:
        with transaction(conn):
            conn.executemany(sql, params)


def _commit(conn: sqlite3.Connection, state: RoomState | None,
            deliveries: list[Delivery], now: float) -> list[Delivery]:
    events = {d.event.id: d.event for d in reversed(deliveries)}  # the first one wins
    unique = {d.id: d for d in reversed(deliveries)}
    with transaction(conn):
        known = _known_events(conn, list(events))
        new = [e for e in reversed(events.values()) if e.id not in known]
        conn.executemany("INSERT INTO events (id, kind, room, message, rules, detected_at)"
                         " VALUES (?, ?, ?, ?, ?, ?)", [_event_row(e) for e in new])
        fresh = {e.id for e in new}
        added = [d for d in reversed(unique.values()) if d.event.id in fresh]
        conn.executemany(
            "INSERT INTO outbox (id, event_id, webhook, rules, attempts, next_attempt_at,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(d.id, d.event.id, d.webhook, _dumps(list(d.rules)), d.attempts, now, now)
             for d in added])
        if state is not None:
            conn.execute(
                "INSERT INTO rooms (room, cursor, last_id, high_water, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room) DO UPDATE SET"
                " cursor = excluded.cursor, last_id = excluded.last_id,"
                " high_water = excluded.high_water, updated_at = excluded.updated_at",
                (state.room, state.cursor, state.last_id, state.high_water, now))
    return added


def _known_events(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        known.update(r[0] for r in conn.execute(
            f"SELECT id FROM events WHERE id IN ({marks})", chunk))
    return known


def _event_row(event: Event) -> Row:
    try:
        message = _dumps(event.message)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"commit failed: the message of event {event.id} cannot be stored"
                         f" as JSON ({exc}); nothing was saved") from exc
    return (event.id, event.kind, event.room, message, _dumps(list(event.rules)),
            event.detected_at)


def _claim(conn: sqlite3.Connection, now: float, limit: int, exclude: frozenset[str],
           instance: str) -> list[Row]:
    if limit <= 0:
        return []
    with transaction(conn):
        # Over-fetch by len(exclude) and filter here: no bound-parameter limit to hit.
        rows = conn.execute(
            _DELIVERY + " FROM outbox AS o JOIN events AS e ON e.id = o.event_id"
            " WHERE o.next_attempt_at <= ? AND o.claimed_by IS NULL"
            " ORDER BY o.next_attempt_at, o.id LIMIT ?", (now, limit + len(exclude))).fetchall()
        rows = [r for r in rows if r[0] not in exclude][:limit]
        conn.executemany("UPDATE outbox SET claimed_by = ? WHERE id = ?",
                         [(instance, r[0]) for r in rows])
    return rows


def _dead_letter(conn: sqlite3.Connection, delivery_id: str, attempts: int,
                 last_status: int | None, last_error: str, now: float) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO dead_letters (id, event_id, webhook, rules, attempts,"
            " last_status, last_error, failed_at) SELECT id, event_id, webhook, rules,"
            " ?, ?, ?, ? FROM outbox WHERE id = ?",
            (attempts, last_status, last_error, now, delivery_id))
        conn.execute("DELETE FROM outbox WHERE id = ?", (delivery_id,))


def _deliveries(rows: list[Row]) -> list[Delivery]:
    """Rebuild deliveries from rows starting with the ``_DELIVERY`` columns."""
    events: dict[str, Event] = {}
    result = []
    for row in rows:
        event = events.get(row[4])
        if event is None:
            event = events[row[4]] = Event(
                row[4], cast(EventKind, row[5]), row[6], _loads(row[7]),
                tuple(_loads(row[8])), row[9])
        result.append(Delivery(row[0], row[1], tuple(_loads(row[2])), event, row[3]))
    return result


def _default(obj: object) -> object:
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _dumps(obj: object) -> str:
    if orjson is not None:
        try:
            return orjson.dumps(obj, default=_default).decode()
        except TypeError:
            pass  # e.g. integers beyond 64 bits: the standard library copes
    return json.dumps(obj, default=_default, ensure_ascii=False, allow_nan=False)


def _loads(text: str) -> Any:
    return orjson.loads(text) if orjson is not None else json.loads(text)
