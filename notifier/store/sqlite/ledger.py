"""A page's events and deliveries written to the SQLite ledger and outbox, many rows per
statement.

Row by row (``executemany``), each row was one ``sqlite3_step``, around which the store's
thread lets the GIL go and then waits to have it back from the event loop, and a page of
500 took a thousand of them. Here the rows go in as multi-row ``VALUES`` statements of
256, 128, … 1 rows (a page of 500: six statements per table), so the few statement texts
stay prepared in the connection's cache; each rule list is serialised once per page.
Sending the page as JSON for SQLite to unpack (``json_each``) cut the Python further
but cost more CPU in SQLite than it saved (bench/RESULTS.md, issue 16, "store").

The events are numbered here, in page order, from the ledger's next ``seq``: an event the
ledger already knows keeps its old number and its place stays unused, so the page's
deliveries find their event's row by ``seq`` (the rowid), not by id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

from notifier.events import Delivery, Event
from notifier.store import rows
from notifier.store.sqlite.locking import StateConnection
from notifier.util.json import dumps

__all__ = ["Page", "insert"]

#: The most rows in one statement (8 columns: 2,048 parameters, far below SQLite's limit).
MAX_ROWS = 256


@cache
def _events_sql(count: int) -> str:
    return ("INSERT INTO events (seq, id, kind, room, message, rules, detected_at) VALUES "
            + ",".join(("(?,?,?,?,?,?,?)",) * count) + " ON CONFLICT (id) DO NOTHING")


@cache
def _outbox_sql(count: int, joined: bool) -> str:
    """Parameters: now, then ``count`` rows of (id, seq, webhook, rules, attempts,
    claimed_by). A repeated delivery goes in once, its first copy. ``joined``: a
    delivery whose event the ledger knew (no row at its seq) is left out; without it,
    for a page whose events were all new, each row's seq is its event's (the foreign key
    checks it all the same)."""
    if not joined:  # ?1 first in each row: the plain ? after it are numbered from 2
        return ("INSERT INTO outbox (next_attempt_at, created_at, id, event_seq, webhook,"
                " rules, attempts, claimed_by) VALUES "
                + ",".join(("(?1,?1,?,?,?,?,?,?)",) * count)
                + " ON CONFLICT (id) DO NOTHING")
    return ("INSERT INTO outbox (id, event_seq, webhook, rules, attempts, next_attempt_at,"
            " created_at, claimed_by) SELECT v.column1, e.seq, v.column3, v.column4,"
            " v.column5, ?1, ?1, v.column6 FROM (VALUES "
            + ",".join(("(?,?,?,?,?,?)",) * count)
            + ") AS v JOIN events AS e ON e.seq = v.column2 WHERE true"
            " ON CONFLICT (id) DO NOTHING")


def _chunks(total: int) -> Iterator[tuple[int, int]]:
    """(start, count) spans covering ``total`` rows, counts from MAX_ROWS, 128, … 1."""
    start, count = 0, MAX_ROWS
    while start < total:
        while count > total - start:
            count //= 2
        yield start, count
        start += count


class Page:
    """A page's deliveries, its distinct events in page order (the first copy wins), and
    for each delivery the index of its event among them."""

    __slots__ = ("batch", "claimed", "events", "slots")

    def __init__(self, batch: Sequence[Delivery], claimed: frozenset[str]) -> None:
        self.batch = batch
        self.claimed = claimed
        self.events: list[Event] = []
        self.slots: list[int] = []
        index: dict[str, int] = {}
        for delivery in batch:
            slot = index.setdefault(delivery.event.id, len(index))
            if slot == len(self.events):
                self.events.append(delivery.event)
            self.slots.append(slot)


def insert(conn: StateConnection, page: Page, now: float, instance: str) -> list[Delivery]:
    """Add ``page``'s events the ledger does not know and their deliveries (inside the
    caller's transaction); return the deliveries added, in page order."""
    first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
    rules: dict[tuple[str, ...], str] = {}
    new = _add_events(conn, page.events, first, rules)
    # The usual page brings only new events: its deliveries need no join to find them.
    added = _add_deliveries(conn, page, first, now, instance, rules, new != len(page.events))
    if new == len(page.events) and added == len(page.batch):
        return list(page.batch)  # the usual page: every event new, no delivery repeated
    return _added(conn, page, first)


def _rules_text(rules: dict[tuple[str, ...], str], names: tuple[str, ...]) -> str:
    """``names`` as JSON, serialised once per page (a page has a few distinct rule lists)."""
    text = rules.get(names)
    if text is None:
        text = rules[names] = dumps(names)
    return text


def _add_events(conn: StateConnection, events: list[Event], first: int,
                rules: dict[tuple[str, ...], str]) -> int:
    new = 0
    for start, count in _chunks(len(events)):
        values: list[Any] = []
        for seq, e in enumerate(events[start:start + count], first + start):
            values += (seq, *rows.event_values(e, _rules_text(rules, e.rules)))
        new += conn.execute(_events_sql(count), values).rowcount
    return new


def _add_deliveries(conn: StateConnection, page: Page, first: int, now: float,
                    instance: str, rules: dict[tuple[str, ...], str], joined: bool) -> int:
    added, mine = 0, page.claimed
    for start, count in _chunks(len(page.batch)):
        values: list[Any] = [now]
        end = start + count
        for d, slot in zip(page.batch[start:end], page.slots[start:end], strict=True):
            values += (d.id, first + slot, d.webhook, _rules_text(rules, d.rules), d.attempts,
                       instance if d.id in mine else None)
        added += conn.execute(_outbox_sql(count, joined), values).rowcount
    return added


def _added(conn: StateConnection, page: Page, first: int) -> list[Delivery]:
    """The deliveries ``insert`` added: the first copy of each whose event is new."""
    fresh: set[Any] = {row[0] for row in conn.execute(
        "SELECT seq - ? FROM events WHERE seq >= ?", (first, first))}
    seen: set[str] = set()
    added = []
    for delivery, slot in zip(page.batch, page.slots, strict=True):
        if slot in fresh and delivery.id not in seen:
            seen.add(delivery.id)
            added.append(delivery)
    return added
