"""A page's events and deliveries written to the SQLite ledger and outbox in two statements.

Each page goes in as two JSON documents that SQLite unpacks itself (``json_each``): one
statement for the page's events, one for its deliveries, whatever the page's size. Row by
row (``executemany``), every row was Python work on the store's thread (a tuple, a
message and a rule list serialised, parameters bound) and one ``sqlite3_step``, around
which the thread lets the GIL go and then waits to have it back from the event loop: a
page of 500 took a GIL hand-over per row (bench/RESULTS.md, issue 16, "store").

The events are numbered here, in page order, from the ledger's next ``seq``: an event the
ledger already knows keeps its old number and its place stays unused, so the page's
deliveries find their event's row by ``seq`` (the rowid), not by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from notifier.errors import StoreError
from notifier.events import Delivery, Event
from notifier.store import rows
from notifier.store.sqlite.locking import StateConnection
from notifier.util.json import dumps

__all__ = ["Page", "insert"]

#: Parameters: the page's first seq, its events' JSON (``Page.events_json``).
_EVENTS = ("INSERT INTO events (seq, id, kind, room, message, rules, detected_at)"
           " SELECT ?1 + key, value->>0, value->>1, value->>2, value->3, value->4, value->>5"
           " FROM json_each(?2) WHERE true ON CONFLICT (id) DO NOTHING")
#: Parameters: the deliveries' JSON (``Page.deliveries_json``), now, the claiming instance,
#: the page's first seq. A delivery whose event the ledger knew finds no row at its seq;
#: a delivery repeated in the page goes in once, its first copy.
_OUTBOX = ("INSERT INTO outbox (id, event_seq, webhook, rules, attempts, next_attempt_at,"
           " created_at, claimed_by)"
           " SELECT d.value->>0, e.seq, d.value->>1, d.value->2, d.value->>3, ?2, ?2,"
           " iif(d.value->>5, ?3, NULL)"
           " FROM json_each(?1) AS d JOIN events AS e ON e.seq = ?4 + (d.value->>4)"
           " WHERE true ON CONFLICT (id) DO NOTHING")


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

    def events_json(self) -> str:
        """The events as rows: id, kind, room, message, rules, detected_at."""
        values = [(e.id, e.kind, e.room, e.message, e.rules, e.detected_at)
                  for e in self.events]
        try:
            return dumps(values)
        except (TypeError, ValueError):
            for event in self.events:  # name the culprit, as a row-by-row write would
                rows.event_values(event)
            raise

    def deliveries_json(self) -> str:
        """The deliveries as rows: id, webhook, rules, attempts, event index, claimed?"""
        mine = self.claimed
        return dumps([(d.id, d.webhook, d.rules, d.attempts, slot, d.id in mine)
                      for d, slot in zip(self.batch, self.slots, strict=True)])


def insert(conn: StateConnection, page: Page, now: float, instance: str) -> list[Delivery]:
    """Add ``page``'s events the ledger does not know and their deliveries (inside the
    caller's transaction); return the deliveries added, in page order."""
    try:
        events = page.events_json()
    except (TypeError, ValueError) as exc:  # event_values found no culprit: say so anyway
        raise StoreError(f"commit failed: the page cannot be stored as JSON ({exc});"
                         " nothing was saved") from exc
    first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
    new = conn.execute(_EVENTS, (first, events)).rowcount
    added = conn.execute(_OUTBOX, (page.deliveries_json(), now, instance, first)).rowcount
    if new == len(page.events) and added == len(page.batch):
        return list(page.batch)  # the usual page: every event new, no delivery repeated
    return _added(conn, page, first)


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
