"""The state store: cursors, the ledger of emitted events, the outbox, the dead letters,
and the quarantine of messages the tail could not process.

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

import importlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from notifier.config import ClusterSettings
from notifier.events import Delivery

__all__ = ["BACKENDS", "POSTGRES_SCHEMES", "QUARANTINE_RAW_LIMIT", "DeadLetter", "Quarantined",
           "RoomState", "Store", "StoreStats", "WebhookState", "open_store", "safe_url",
           "shown_location"]

#: ``state`` values with these prefixes (any case) are PostgreSQL connection URLs.
POSTGRES_SCHEMES = ("postgres://", "postgresql://")


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


#: Characters of a quarantined message's JSON kept at most (a longer one is cut, and
#: marked ``truncated``: it can be read, not replayed).
QUARANTINE_RAW_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A message the tail could not process: kept, with why and where, until replayed or
    purged (a dead-letter queue for input, as Kafka Connect keeps one for poison records)."""

    room: str
    reason: str
    raw: str
    """The message as received, as JSON, cut to QUARANTINE_RAW_LIMIT characters."""
    truncated: bool
    fingerprint: str
    """A digest of the whole message: a re-read of the same message is stored once."""
    position: str
    """Where the page came from and where in it: ``cursor msg_… (or since …), messages[3]``."""
    message_id: str | None = None
    """The message's id, if it had a usable one."""
    quarantined_at: float = 0.0
    id: int = 0
    """Numbered by the store (0 before it was stored)."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts for status output and metrics."""

    outbox: int
    dead_letters: int
    rooms: int
    quarantined: int = 0


@dataclass(frozen=True, slots=True)
class WebhookState:
    """A webhook's health as the running sender last saved it; the CLI reads and resets it."""

    webhook: str
    breaker: str = "closed"
    """``closed``, ``open`` or ``half_open`` (see notifier.delivery.breaker)."""
    opened_at: float | None = None
    """When the breaker last opened (unix time), while it is not closed."""
    failing_since: float | None = None
    """The first failure since the last success; None while it succeeds."""
    last_success_at: float | None = None
    disabled_at: float | None = None
    """When the webhook was disabled; None while it is enabled."""
    disabled_reason: str = ""

    @property
    def disabled(self) -> bool:
        """Whether deliveries to this webhook are held (kept in the outbox, not sent)."""
        return self.disabled_at is not None


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

    async def commit_page(self, state: RoomState | None, deliveries: Sequence[Delivery],
                          quarantine: Sequence[Quarantined], *,
                          claimed: Collection[str] = ()) -> tuple[list[Delivery], int]:
        """``commit``, and in the same transaction keep the ``quarantine`` messages not
        kept already (by room and fingerprint); return (deliveries added, messages kept).

        The added deliveries whose ids are in ``claimed`` are inserted claimed by this
        instance, as ``claim_due`` would mark them: this process's sender takes them from
        the page (no claim query), and a crash leaves them to the next claim like any
        claim of a dead instance (see ``claim_due``)."""

    async def quarantined(self, limit: int | None = None) -> list[Quarantined]:
        """Kept messages, oldest first (the newest ``limit`` of them when given)."""

    async def remove_quarantined(self, ids: Sequence[int]) -> int:
        """Forget kept messages (replayed or purged); return how many were removed."""

    async def claim_due(self, now: float, limit: int, exclude: frozenset[str] = frozenset(),
                        webhooks: Collection[str] | None = None,
                        ordered: Collection[str] = ()) -> list[Delivery]:
        """Up to ``limit`` outbox deliveries due at ``now``, oldest first, not in ``exclude``,
        for ``webhooks`` only (None: every webhook), marked as claimed by this instance.

        For a webhook in ``ordered``, only the head of each room's queue (the delivery
        whose event the ledger numbered first) is claimed, and nothing for a room that
        has a delivery to that webhook claimed already: one at a time, in ledger order."""

    async def next_due(self, ordered: Collection[str] = ()) -> float | None:
        """When the earliest unclaimed outbox delivery becomes due, or None if empty; for a
        webhook in ``ordered``, only the deliveries ``claim_due`` could hand out count (each
        room's head, none while the room has one claimed)."""

    async def delivered(self, ids: Sequence[str]) -> None:
        """Remove deliveries that received a 2xx."""

    async def reschedule(self, delivery_id: str, attempts: int, next_attempt_at: float,
                         last_status: int | None, last_error: str) -> None:
        """Record a failed attempt and when the next one is due."""

    async def release(self, ids: Sequence[str]) -> None:
        """Give claimed deliveries back to the outbox (shutdown, lost lease)."""

    async def release_claims(self, instance: str) -> None:
        """Give back every delivery ``instance`` claimed (a delivery worker that exited)."""

    async def dead_letter(self, delivery_id: str, attempts: int, last_status: int | None,
                          last_error: str) -> None:
        """Move a delivery from the outbox to the dead letters."""

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""

    async def prune(self, older_than: float) -> int:
        """Forget ledger entries detected before ``older_than`` that nothing refers to."""

    async def stats(self) -> StoreStats:
        """Outbox depth, dead letters, rooms known, messages quarantined."""

    async def requeue_dead_letters(self, ids: Sequence[str], now: float) -> int:
        """Move the dead letters with these delivery ids back to the outbox, unclaimed, due
        at ``now``, with ``attempts`` reset to 0 (a fresh retry budget); return how many
        moved. Unknown ids are skipped. The ``webhook-id`` (the delivery id) is unchanged."""

    async def purge_dead_letters(self, ids: Sequence[str]) -> int:
        """Delete the dead letters with these delivery ids; return how many were deleted."""

    async def requeue(self, deliveries: Sequence[Delivery], now: float) -> int:
        """Enqueue ``deliveries`` even when their events are already in the ledger (replay).

        An event new to the ledger is added to it; a delivery already in the outbox is left
        as it is; a dead-lettered one is moved back (as ``requeue_dead_letters``); the rest
        are added due at ``now`` with 0 attempts. Never touches cursors. Returns how many
        deliveries were added or moved back."""

    async def webhook_states(self) -> dict[str, WebhookState]:
        """Every saved webhook state, by webhook name (webhooks never saved are absent)."""

    async def save_webhook_state(self, state: WebhookState) -> None:
        """Insert or replace the saved state of ``state.webhook``."""


#: The Store class of each backend as "module:class", imported only when a ``state`` value
#: asks for it (so asyncpg is loaded for PostgreSQL only, and no backend is imported here).
BACKENDS = {"postgresql": "notifier.store.postgres:PostgresStore",
            "sqlite": "notifier.store.sqlite:SQLiteStore"}


def open_store(url: str, *, instance: str = "local", exclusive: bool = False,
               cluster: ClusterSettings | None = None) -> Store:
    """The store for a ``state`` value (not yet opened); ``cluster`` tunes PostgreSQL."""
    if url.lower().startswith(POSTGRES_SCHEMES):
        settings = cluster or ClusterSettings()
        return _backend("postgresql")(url, instance=instance, exclusive=exclusive,
                                      pool_size=settings.pool_size,
                                      claim_timeout=settings.claim_timeout,
                                      lease_ttl=settings.lease_ttl)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return _backend("sqlite")(path, instance=instance, exclusive=exclusive)


def _backend(name: str) -> Callable[..., Store]:
    module, _, attr = BACKENDS[name].partition(":")
    backend: Callable[..., Store] = getattr(importlib.import_module(module), attr)
    return backend


def shown_location(url: str) -> str:
    """The ``state`` value as it may appear in logs and output (a URL loses its password)."""
    return safe_url(url) if url.lower().startswith(POSTGRES_SCHEMES) else url


def safe_url(url: str) -> str:
    """The URL without its password, fit for logs and messages."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    host = parts.hostname or ""
    port = f":{parts.port}" if _port(parts) else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _port(parts: Any) -> int | None:
    try:
        return int(parts.port) if parts.port else None
    except ValueError:
        return None
