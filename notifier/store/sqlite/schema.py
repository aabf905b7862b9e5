"""The SQLite state file's schema, its migrations, the checks made when opening it, and
the snapshot of a whole state that ``notifier state migrate`` copies.

A state file is recognised by its ``application_id`` and its ``meta`` table; anything
else that is not empty is refused and left untouched, because resetting someone's file
(or an older copy of our own) would silently lose cursors and pending deliveries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from notifier.errors import StoreError
from notifier.store.rows import QUARANTINE_COLUMNS, ROOM_COLUMNS, StateDump
from notifier.store.sqlite.locking import StateConnection, begin

__all__ = ["APPLICATION", "APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "describe",
           "dump", "prepare", "transaction"]

APPLICATION = "roomlio-notifier"
#: ``PRAGMA application_id``: "RNOT", so ``file(1)`` and our own checks can tell the file apart.
APPLICATION_ID = 0x524E4F54

#: ``MIGRATIONS[n]`` takes a file from schema version ``n`` to ``n + 1``. Statements, not
#: scripts: ``executescript`` would commit half-way through the migration's transaction.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        """CREATE TABLE rooms (
            room TEXT PRIMARY KEY, cursor TEXT, last_id TEXT, high_water TEXT,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID""",
        # events.seq, not the (random) event id, is what outbox and dead_letters refer
        # to: their event index then grows at the end instead of being written all over.
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            room TEXT NOT NULL, message TEXT NOT NULL, rules TEXT NOT NULL,
            detected_at REAL NOT NULL
        )""",
        "CREATE INDEX events_detected_at ON events (detected_at)",
        """CREATE TABLE outbox (
            id TEXT PRIMARY KEY, event_seq INTEGER NOT NULL REFERENCES events (seq),
            webhook TEXT NOT NULL, rules TEXT NOT NULL, attempts INTEGER NOT NULL,
            next_attempt_at REAL NOT NULL, claimed_by TEXT, last_status INTEGER,
            last_error TEXT, created_at REAL NOT NULL
        )""",
        # Partial: claim_due and next_due only ever look at unclaimed rows; claim_due
        # for some webhooks reads one range of outbox_lane per webhook.
        "CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE claimed_by IS NULL",
        """CREATE INDEX outbox_lane ON outbox (webhook, next_attempt_at, id)
            WHERE claimed_by IS NULL""",
        # Foreign-key checks and prune look rows up by event.
        "CREATE INDEX outbox_event ON outbox (event_seq)",
        """CREATE TABLE dead_letters (
            id TEXT PRIMARY KEY, event_seq INTEGER NOT NULL REFERENCES events (seq),
            webhook TEXT NOT NULL, rules TEXT NOT NULL, attempts INTEGER NOT NULL,
            last_status INTEGER, last_error TEXT NOT NULL, failed_at REAL NOT NULL
        )""",
        "CREATE INDEX dead_letters_event ON dead_letters (event_seq)",
    ),
    (
        # Delivery operations: each webhook's breaker, failure streak and disablement.
        """CREATE TABLE webhook_state (
            webhook TEXT PRIMARY KEY, breaker TEXT NOT NULL, opened_at REAL,
            failing_since REAL, last_success_at REAL, disabled_at REAL,
            disabled_reason TEXT NOT NULL, updated_at REAL NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX dead_letters_failed_at ON dead_letters (failed_at)",
    ),
    (
        # Ordered webhooks: claim_due finds each room's head among a webhook's rows,
        # claimed ones included, which the partial outbox_lane index leaves out.
        "CREATE INDEX outbox_webhook_seq ON outbox (webhook, event_seq)",
    ),
    (
        # Messages the tail could not process (see notifier.polling.quarantine).
        """CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY, room TEXT NOT NULL, fingerprint TEXT NOT NULL,
            message_id TEXT, position TEXT NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL,
            truncated INTEGER NOT NULL, quarantined_at REAL NOT NULL,
            UNIQUE (room, fingerprint)
        )""",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

_REASONS = {
    sqlite3.SQLITE_BUSY: "database is locked (another process holds a write lock on {path} "
                         "for more than {timeout:g}s)",
    sqlite3.SQLITE_LOCKED: "database is locked (another connection holds a lock on {path})",
    sqlite3.SQLITE_FULL: "disk full while writing {path}; free some space and restart",
    sqlite3.SQLITE_READONLY: "{path} is read-only; check the permissions of the file "
                             "and of its directory",
    sqlite3.SQLITE_NOTADB: "{path} is not an SQLite database; move it away or point "
                           "`state` at another file (it is left untouched)",
    sqlite3.SQLITE_CORRUPT: "{path} is corrupt ({error}); restore it from a backup, or move "
                            "it away to start afresh (cursors and pending deliveries in it "
                            "would be lost)",
    sqlite3.SQLITE_CANTOPEN: "cannot open {path} ({error}); check that it is a file in a "
                             "writable directory",
    sqlite3.SQLITE_IOERR: "I/O error on {path} ({error}); check the disk",
}


def describe(exc: sqlite3.Error, path: str, timeout: float) -> str:
    """Say what an SQLite error means for the state file, and what to do about it."""
    code = getattr(exc, "sqlite_errorcode", None)
    reason = _REASONS.get(code & 0xFF) if isinstance(code, int) else None
    if reason is None:
        return f"{exc} ({path})"
    return reason.format(path=path, timeout=timeout, error=exc)


@contextmanager
def transaction(conn: StateConnection, *,
                durable: bool = True) -> Iterator[StateConnection]:
    """One write transaction, taken up front so it cannot fail half-way for a lock;
    ``durable=False``: its commit is not synced by itself (see sqlite.locking). Every
    write to the state file goes through one."""
    begin(conn, durable=durable)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def prepare(conn: StateConnection, path: str, timeout: float) -> None:
    """Set the connection up; create, migrate or refuse the file's schema."""
    conn.busy_ms = int(timeout * 1000)
    conn.execute(f"PRAGMA busy_timeout = {conn.busy_ms}")
    conn.execute("PRAGMA foreign_keys = ON")
    # In WAL mode FULL syncs the log on every commit: a commit that returned survives
    # power loss, not just a crash of the process.
    conn.execute("PRAGMA synchronous = FULL")
    conn.synced = True
    # A page of deliveries touches pages all over the id indexes: 16 MiB keeps them warm.
    conn.execute("PRAGMA cache_size = -16384")
    version = _version(conn, path)  # refuses foreign files before anything is written
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    if version < SCHEMA_VERSION:
        with transaction(conn):
            # Again, under the write lock: another process may have got there first.
            _migrate(conn, _version(conn, path))


def _version(conn: StateConnection, path: str) -> int:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id == 0 and user_version == 0 and objects == 0:
        return 0
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is an SQLite database but not a {APPLICATION} state file; point "
            "`state` at another file (this one is left untouched)")
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        version = int(meta["schema_version"])
    except (sqlite3.OperationalError, KeyError, ValueError) as exc:
        raise StoreError(
            f"{path} is a damaged {APPLICATION} state file (no usable meta table: {exc}); "
            "restore it from a backup, or move it away to start afresh") from exc
    if meta.get("application") != APPLICATION:
        raise StoreError(f"{path} is not a {APPLICATION} state file; point `state` at "
                         "another file (this one is left untouched)")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer notifier (schema version {version}, this one "
            f"knows up to {SCHEMA_VERSION}); upgrade the notifier or use another state file")
    return version


def _migrate(conn: StateConnection, version: int) -> None:
    for migration in MIGRATIONS[version:]:
        for statement in migration:
            conn.execute(statement)
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))])
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


#: StateDump's fields and the queries that fill them (its columns, in the ledger's order).
_DUMP = {
    "events": "SELECT seq, id, kind, room, message, rules, detected_at FROM events ORDER BY seq",
    "outbox": "SELECT id, event_seq, webhook, rules, attempts, next_attempt_at, last_status,"
              " last_error, created_at FROM outbox ORDER BY next_attempt_at, id",
    "dead_letters": "SELECT id, event_seq, webhook, rules, attempts, last_status, last_error,"
                    " failed_at FROM dead_letters ORDER BY failed_at, id",
    "rooms": f"SELECT {ROOM_COLUMNS}, updated_at FROM rooms ORDER BY room",
    "quarantine": f"SELECT {QUARANTINE_COLUMNS} FROM quarantine ORDER BY id",
}


def dump(conn: StateConnection) -> StateDump:
    """The whole state, read in one consistent snapshot."""
    with transaction(conn):
        return StateDump(**{name: conn.execute(sql).fetchall() for name, sql in _DUMP.items()})
