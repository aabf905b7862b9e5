"""The state file's write lock (notifier.store.sqlite.locking): taken soon after another
process lets it go, given up after the busy timeout, and synced only for what must survive
a power cut."""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.errors import StoreError
from notifier.polling.pages import Defect
from notifier.polling.quarantine import keep
from notifier.store import RoomState, WebhookState
from notifier.store.sqlite import SQLiteStore, dead_letters, outbox
from notifier.store.sqlite.locking import StateConnection
from notifier.store.sqlite.schema import prepare, transaction
from tests.test_store import deliveries, make_event


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


def _connect(path: str, timeout: float = 5.0) -> StateConnection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           factory=StateConnection)
    prepare(conn, path, timeout)
    return conn


def _late_after_release(path: str, hold: float) -> float:
    """Seconds between another connection's COMMIT and our transaction starting, when
    ours began waiting ``hold`` seconds before that COMMIT."""
    holder, waiter = _connect(path), _connect(path)
    holder.execute("BEGIN IMMEDIATE")
    released: list[float] = []

    def release() -> None:
        time.sleep(hold)
        released.append(time.monotonic())
        holder.execute("COMMIT")

    thread = threading.Thread(target=release)
    thread.start()
    with transaction(waiter):
        got = time.monotonic()
    thread.join()
    holder.close()
    waiter.close()
    return got - released[0]


def test_a_taken_write_lock_is_taken_over_soon_after_it_is_released(path: str) -> None:
    """SQLite's own busy handler sleeps 1, 2, 5 ... 100 ms between tries: for a lock
    released 240 ms into the wait, its next try comes 88 ms late. Ours tries every 4 ms."""
    _connect(path).close()
    late = statistics.median(_late_after_release(path, 0.24) for _ in range(3))
    assert late < 0.04, f"took the lock {late * 1000:.0f} ms after it was released"


def test_a_write_lock_held_past_the_busy_timeout_fails_as_locked(path: str) -> None:
    holder, waiter = _connect(path), _connect(path, timeout=0.2)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"), transaction(waiter):
        pass
    assert 0.15 < time.monotonic() - started < 3
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 200  # restored
    holder.execute("ROLLBACK")
    with transaction(waiter):  # the lock is free again: taken at once
        pass


async def test_a_locked_file_is_a_store_error_naming_the_lock(path: str) -> None:
    holder = _connect(path)
    async with SQLiteStore(path, busy_timeout=0.1) as store:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            await store.delivered(["x"])
        holder.execute("ROLLBACK")
        await store.delivered(["x"])


@pytest.fixture
def traced(path: str) -> Iterator[tuple[StateConnection, list[str]]]:
    conn = _connect(path)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    yield conn, statements
    conn.close()


def _synchronous_at_commit(statements: list[str]) -> str:
    """The ``synchronous`` level the last transaction among ``statements`` (every
    statement since the connection was prepared: FULL) committed with."""
    level = "FULL"
    last_commit = len(statements) - statements[::-1].index("COMMIT")
    for sql in statements[:last_commit]:
        if sql.startswith("PRAGMA synchronous ="):
            level = sql.split("=")[1].strip()
    return level


def test_pages_are_synced_and_claims_and_completions_are_not(
        traced: tuple[sqlite3.Connection, list[str]]) -> None:
    """A page (events, cursor, outbox rows) must survive a power cut: synced. A claim or
    a completion a power cut forgets costs a re-sent delivery at most: not synced alone."""
    conn, statements = traced
    batch = deliveries(make_event(1), "crm")
    outbox.commit_page(conn, None, batch, [], 1000.0)
    assert _synchronous_at_commit(statements) == "FULL"
    for step in (lambda: outbox.claim(conn, 2000.0, 10, frozenset(), None, "me"),
                 lambda: outbox.delivered(conn, [batch[0].id])):
        step()
        assert _synchronous_at_commit(statements) == "NORMAL"
    outbox.commit_page(conn, None, deliveries(make_event(2), "crm"), [], 1000.0)
    assert _synchronous_at_commit(statements) == "FULL"


def test_a_page_that_only_moves_the_cursor_is_not_synced_alone(
        traced: tuple[sqlite3.Connection, list[str]]) -> None:
    """A page with no delivery and no quarantined message saves only the cursor: a power
    cut that forgets it makes the tail read the page again, so it is not synced by itself;
    a page that keeps a quarantined message is (the message would be lost otherwise)."""
    conn, statements = traced
    outbox.commit_page(conn, RoomState("r1", cursor="c1"), [], [], 1000.0)
    assert _synchronous_at_commit(statements) == "NORMAL"
    kept = keep("r1", [Defect(0, "bad", {"body": "no id"})], "cursor c1", 1000.0)
    outbox.commit_page(conn, RoomState("r1", cursor="c2"), [], kept, 1000.0)
    assert _synchronous_at_commit(statements) == "FULL"


def test_every_other_write_is_synced_even_after_an_unsynced_one(
        traced: tuple[StateConnection, list[str]]) -> None:
    """The level is switched only when a transaction needs the other one: a write made
    after a claim or a completion (an attempt, a webhook's state, a dead letter, a prune,
    a start's cleared claims) must still commit synced."""
    conn, statements = traced
    batch = deliveries(make_event(1), "crm") + deliveries(make_event(2), "crm")
    outbox.commit_page(conn, None, batch, [], 1000.0)
    writes = [lambda: outbox.reschedule(conn, batch[0].id, 1, 3000.0, 500, "boom"),
              lambda: dead_letters.save_webhook_state(conn, WebhookState("crm"), 1000.0),
              lambda: dead_letters.dead_letter(conn, batch[1].id, 3, 500, "boom", 1000.0),
              lambda: outbox.prune(conn, 0.0),
              lambda: outbox.clear_claims(conn)]
    for write in writes:
        outbox.claim(conn, 2000.0, 10, frozenset(), None, "me")
        assert _synchronous_at_commit(statements) == "NORMAL"
        commits = statements.count("COMMIT")
        write()
        assert statements.count("COMMIT") == commits + 1  # its own transaction: no autocommit
        assert _synchronous_at_commit(statements) == "FULL"


def test_a_run_of_unsynced_transactions_switches_the_level_once(
        traced: tuple[StateConnection, list[str]]) -> None:
    """Claims and completions in a row set ``synchronous`` once, not twice each; and no
    transaction asks SQLite for the busy timeout it was given."""
    conn, statements = traced
    batch = deliveries(make_event(1), "crm")
    outbox.commit_page(conn, None, batch, [], 1000.0)
    statements.clear()
    outbox.claim(conn, 2000.0, 10, frozenset(), None, "me")
    for _ in range(3):
        outbox.delivered(conn, [batch[0].id])
    assert [s for s in statements if s.startswith("PRAGMA synchronous")] == [
        "PRAGMA synchronous = NORMAL"]
    assert "PRAGMA busy_timeout" not in statements


def test_the_busy_timeout_is_back_after_a_transaction(path: str) -> None:
    """Reads and everything else outside ``begin`` still wait for a lock as SQLite does."""
    conn = _connect(path, timeout=0.7)
    with transaction(conn, durable=False):
        pass
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 700
    conn.close()


def test_a_failed_transaction_is_rolled_back_and_the_next_one_synced(
        traced: tuple[StateConnection, list[str]]) -> None:
    conn, statements = traced
    with pytest.raises(ZeroDivisionError), transaction(conn, durable=False):
        _ = 1 / 0
    assert not conn.in_transaction
    outbox.commit_page(conn, None, deliveries(make_event(1), "crm"), [], 1000.0)
    assert _synchronous_at_commit(statements) == "FULL"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
