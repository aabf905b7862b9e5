"""A page written to the SQLite ledger and outbox (notifier.store.sqlite.ledger): many rows
per statement, from a few statement texts that stay prepared."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from notifier.store.sqlite import outbox
from notifier.store.sqlite.locking import StateConnection
from notifier.store.sqlite.schema import prepare
from tests.test_store import deliveries, make_event


def _traced(tmp_path: Path) -> tuple[StateConnection, list[str]]:
    path = str(tmp_path / "state.db")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           factory=StateConnection)
    prepare(conn, path, 5.0)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    return conn, statements


def _inserts(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("INSERT INTO")]


def test_a_page_of_500_takes_a_dozen_statements_not_a_thousand(tmp_path: Path) -> None:
    """Each statement is a GIL hand-over on the store's thread: a page goes in by chunks
    of up to 256 rows (500 = 256 + 128 + 64 + 32 + 16 + 4), events and deliveries alike."""
    conn, statements = _traced(tmp_path)
    page = [d for n in range(500) for d in deliveries(make_event(n), "crm")]
    assert outbox.commit_page(conn, None, page, [], 1000.0)[0] == page
    inserts = _inserts(statements)
    assert len([s for s in inserts if s.startswith("INSERT INTO events")]) == 6
    assert len([s for s in inserts if s.startswith("INSERT INTO outbox")]) == 6
    conn.close()


def test_pages_of_every_size_use_a_few_statement_texts(tmp_path: Path) -> None:
    """Pages of 1 to 300 deliveries are written with 9 texts per table (256, 128, … 1
    rows), so the connection's statement cache keeps them prepared."""
    conn, statements = _traced(tmp_path)
    n = 0
    for size in range(1, 301, 7):
        outbox.commit_page(conn, None, [d for k in range(n, n + size)
                                        for d in deliveries(make_event(k), "crm")], [], 1.0)
        n += size
    # the trace shows the values bound: count a statement's rows by their ids
    sizes = {(s[:20], s.count("'evt_") if "events" in s[:20] else s.count("'msg_"))
             for s in _inserts(statements)}
    assert {size for _, size in sizes} <= {256, 128, 64, 32, 16, 8, 4, 2, 1}
    conn.close()
