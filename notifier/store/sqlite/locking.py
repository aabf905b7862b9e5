"""Taking the state file's write lock: waiting for it closely, and syncing only what must.

Several processes write the state file: the runner (pages, retries) and its delivery
workers (claims, completions). SQLite's own busy handler waits for a taken write lock by
sleeping 1, 2, 5, 10 … up to 100 ms between tries: measured with two workers, a
transaction that found the lock taken waited 49 ms on average for locks held about 10 ms.
``begin`` tries again every 0.5–4 ms instead, up to the connection's busy timeout, and
then fails exactly as SQLite would (``database is locked``).

A write that loses nothing if a power cut forgets it (a claim: a restarted runner clears
every claim; a completion: the delivery is sent again under the same webhook-id, which
at-least-once allows) commits without its own fsync (``synchronous = NORMAL`` for that
transaction). The level is switched only when a transaction needs the other one than the
last (a run of claims and completions stays NORMAL, a page switches to FULL), so every
write the store makes goes through ``begin`` saying which it needs. The WAL is
append-only and the next synced commit syncs everything before it, so the synced ones (a page's
events and cursor, an attempt, a dead letter) stay durable, and the file is never
corrupted.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["MAX_PAUSE", "StateConnection", "begin"]

#: The first and the longest pause between two tries for a taken write lock.
FIRST_PAUSE = 0.0005
MAX_PAUSE = 0.004


class StateConnection(sqlite3.Connection):
    """A connection to a state file that remembers, in Python, what ``begin`` would
    otherwise ask SQLite for or set on every transaction: the busy timeout and whether
    commits are synced (each a statement, and the claims and completions that take them
    are small and frequent)."""

    busy_ms = 0
    """``PRAGMA busy_timeout`` as ``schema.prepare`` set it (ms)."""
    synced = True
    """Whether ``PRAGMA synchronous`` is FULL (else NORMAL): every write transaction
    says which it needs, so the level changes only when it must."""


def begin(conn: StateConnection, *, durable: bool) -> None:
    """``BEGIN IMMEDIATE``, waiting for another writer up to the busy timeout, synced
    as ``durable`` says."""
    if conn.synced != durable:
        conn.execute("PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = NORMAL")
        conn.synced = durable
    timeout_ms = conn.busy_ms
    conn.execute("PRAGMA busy_timeout = 0")  # SQLite's own waiting, with its long naps, off
    try:
        _take(conn, time.monotonic() + timeout_ms / 1000)
    finally:  # reads and the rest wait for a lock as SQLite does
        conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")


def _take(conn: sqlite3.Connection, deadline: float) -> None:
    pause = FIRST_PAUSE
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or left <= 0:
                raise
        time.sleep(min(pause, left))
        pause = min(pause * 2, MAX_PAUSE)

