"""The PostgreSQL store's operations side: replaying and purging dead letters, and each
webhook's saved health (a mixin of PostgresStore; same contract as the SQLite store)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from notifier.events import Delivery
from notifier.store.base import WebhookState
from notifier.util.json import dumps

__all__ = ["AdminOps"]

_MOVE_BACK = (
    "WITH moved AS (DELETE FROM notifier_dead_letters WHERE id = ANY($1::text[])"
    " RETURNING id, event_seq, webhook, rules, last_status, last_error)"
    " INSERT INTO notifier_outbox (id, event_seq, webhook, rules, attempts, next_attempt_at,"
    " last_status, last_error, created_at) SELECT id, event_seq, webhook, rules, 0, $2,"
    " last_status, last_error, $2 FROM moved ON CONFLICT (id) DO NOTHING RETURNING id")
_STATE_COLUMNS = ("webhook, breaker, opened_at, failing_since, last_success_at, disabled_at,"
                  " disabled_reason")


class AdminOps:
    """Dead-letter replay and webhook health, over ``self._conn`` of PostgresStore."""

    def _conn(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # pragma: no cover - provided by PostgresStore

    async def replay_dead_letters(self, ids: Sequence[str]) -> int:
        """Put dead letters back in the outbox (same webhook-id, a fresh attempt budget)."""
        return await self.requeue_dead_letters(ids, time.time())

    async def requeue_dead_letters(self, ids: Sequence[str], now: float) -> int:
        """Move dead letters back to the outbox, unclaimed, due at ``now``, 0 attempts."""
        async with self._conn("replaying dead letters") as conn:
            return len(await conn.fetch(_MOVE_BACK, list(dict.fromkeys(ids)), now))

    async def purge_dead_letters(self, ids: Sequence[str]) -> int:
        """Delete dead letters; return how many were deleted."""
        async with self._conn("purging dead letters") as conn:
            status = await conn.execute(
                "DELETE FROM notifier_dead_letters WHERE id = ANY($1::text[])", list(ids))
        return int(status.split()[-1])

    async def requeue(self, deliveries: Sequence[Delivery], now: float) -> int:
        """Enqueue deliveries whether or not the ledger knows their events (replay)."""
        async with self._conn("requeueing deliveries") as conn, conn.transaction():
            seqs = await _ledger(conn, deliveries)
            moved = len(await conn.fetch(_MOVE_BACK, [d.id for d in deliveries], now))
            added = await conn.fetch(
                "INSERT INTO notifier_outbox (id, event_seq, webhook, rules, attempts,"
                " next_attempt_at, created_at) SELECT *, 0, $5, $5 FROM unnest($1::text[],"
                " $2::bigint[], $3::text[], $4::text[]) ON CONFLICT (id) DO NOTHING"
                " RETURNING id", [d.id for d in deliveries],
                [seqs[d.event.id] for d in deliveries], [d.webhook for d in deliveries],
                [dumps(list(d.rules)) for d in deliveries], now)
        return moved + len(added)

    async def webhook_states(self) -> dict[str, WebhookState]:
        """Every saved webhook state, by name."""
        async with self._conn("reading webhook states") as conn:
            rows = await conn.fetch(f"SELECT {_STATE_COLUMNS} FROM notifier_webhook_state"
                                    " ORDER BY webhook")
        return {row[0]: WebhookState(*row) for row in rows}

    async def save_webhook_state(self, state: WebhookState) -> None:
        """Insert or replace one webhook's state."""
        async with self._conn("saving a webhook state") as conn:
            await conn.execute(
                f"INSERT INTO notifier_webhook_state ({_STATE_COLUMNS}, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (webhook) DO UPDATE SET"
                " breaker = excluded.breaker, opened_at = excluded.opened_at,"
                " failing_since = excluded.failing_since,"
                " last_success_at = excluded.last_success_at,"
                " disabled_at = excluded.disabled_at,"
                " disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
                state.webhook, state.breaker, state.opened_at, state.failing_since,
                state.last_success_at, state.disabled_at, state.disabled_reason, time.time())


async def _ledger(conn: Any, deliveries: Sequence[Delivery]) -> dict[str, int]:
    """The ledger seq of each delivery's event, adding the events it does not know."""
    from notifier.store.postgres.rows import event_rows

    events = {d.event.id: d.event for d in deliveries}
    rows = event_rows(list(events.values()))
    if rows:
        await conn.execute(
            "INSERT INTO notifier_events (id, kind, room, message, rules, detected_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::text[], $6::float8[]) ON CONFLICT (id) DO NOTHING",
            *(list(col) for col in zip(*rows, strict=True)))
    found = await conn.fetch("SELECT id, seq FROM notifier_events WHERE id = ANY($1::text[])",
                             list(events))
    return {r["id"]: r["seq"] for r in found}
