"""The state store: cursors, the ledger of emitted events, the outbox, the dead letters.

One Protocol, several implementations chosen by the ``state`` URL's scheme
(a plain path or ``sqlite:///path`` → SQLite; ``postgresql://`` → PostgreSQL).
The guarantees every implementation keeps:

* ``commit`` is one transaction: the room's new cursor and the deliveries its page
  produced are saved together or not at all (the outbox pattern).
* The ledger dedupes by event id (one message version): an event already committed
  produces no new deliveries, however often its message is read again.
* A delivery leaves the outbox only through ``delivered`` (after a 2xx) or
  ``dead_letter`` (kept for inspection and replay).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from notifier.events import Delivery

__all__ = ["DeadLetter", "RoomState", "Store", "StoreStats", "open_store"]


@dataclass(frozen=True, slots=True)
class RoomState:
    """Where the tail of one room stands."""

    room: str
    cursor: str | None = None
    """The ``startCursor`` for the next request (None: start from ``start_from``)."""
    last_id: str | None = None
    """The id of the last message processed."""
    high_water: str | None = None
    """The newest ``createdAt`` the tail has processed (for edit scans and cursor loss)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery that ran out of attempts or failed for good."""

    delivery: Delivery
    last_status: int | None
    last_error: str
    failed_at: float


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts for status output and metrics."""

    outbox: int
    dead_letters: int
    rooms: int


class Store(Protocol):
    """What the tailer, the sender and the CLI need from durable state."""

    async def open(self) -> None:
        """Create or check the schema; refuse a corrupt or foreign file with StoreError."""

    async def close(self) -> None:
        """Release connections and locks."""

    async def load_room(self, room: str) -> RoomState | None:
        """The saved state of ``room``, or None when it was never tailed."""

    async def commit(self, state: RoomState | None,
                     deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Atomically save ``state`` (if given) and the deliveries of events not yet in
        the ledger; return the deliveries actually added to the outbox."""

    async def claim_due(self, now: float, limit: int, exclude: frozenset[str] = frozenset(),
                        webhooks: Collection[str] | None = None) -> list[Delivery]:
        """Up to ``limit`` outbox deliveries due at ``now``, oldest first, not in ``exclude``,
        for ``webhooks`` only (None: every webhook), marked as claimed by this instance."""

    async def next_due(self) -> float | None:
        """When the earliest unclaimed outbox delivery becomes due, or None if empty."""

    async def delivered(self, ids: Sequence[str]) -> None:
        """Remove deliveries that received a 2xx."""

    async def reschedule(self, delivery_id: str, attempts: int, next_attempt_at: float,
                         last_status: int | None, last_error: str) -> None:
        """Record a failed attempt and when the next one is due."""

    async def release(self, ids: Sequence[str]) -> None:
        """Give claimed deliveries back to the outbox (shutdown, lost lease)."""

    async def dead_letter(self, delivery_id: str, attempts: int, last_status: int | None,
                          last_error: str) -> None:
        """Move a delivery from the outbox to the dead letters."""

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""

    async def prune(self, older_than: float) -> int:
        """Forget ledger entries detected before ``older_than`` that nothing refers to."""

    async def stats(self) -> StoreStats:
        """Outbox depth, dead letters, rooms known."""


def open_store(url: str, *, instance: str = "local", exclusive: bool = False) -> Store:
    """The store for a ``state`` value (not yet opened)."""
    if url.startswith(("postgres://", "postgresql://")):
        from notifier.errors import StoreError

        raise StoreError("PostgreSQL state is not available in this version")
    from notifier.store.sqlite import SQLiteStore

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SQLiteStore(path, instance=instance, exclusive=exclusive)
