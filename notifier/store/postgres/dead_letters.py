"""The PostgreSQL store's dead letters and delivery operations: dead-lettering, dead-letter
replay and purge, event replay past the ledger, and each webhook's saved health. One
function per transaction, on one connection (same contract as the SQLite store).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from notifier.events import Delivery
from notifier.store import rows
from notifier.store.base import DeadLetter, WebhookState
from notifier.store.postgres.outbox import add_events, select
from notifier.util.json import dumps

__all__ = ["dead_letter", "dead_letters", "purge_dead_letters", "requeue",
           "requeue_dead_letters", "save_webhook_state", "webhook_states"]

_MOVE_BACK = (
    "WITH moved AS (DELETE FROM notifier_dead_letters WHERE id = ANY($1::text[])"
    " RETURNING id, event_seq, webhook, rules, last_status, last_error)"
    " INSERT INTO notifier_outbox (id, event_seq, webhook, rules, attempts, next_attempt_at,"
    " last_status, last_error, created_at) SELECT id, event_seq, webhook, rules, 0, $2,"
    " last_status, last_error, $2 FROM moved ON CONFLICT (id) DO NOTHING RETURNING id")


async def dead_letter(conn: Any, delivery_id: str, attempts: int, last_status: int | None,
                      last_error: str, now: float, instance: str) -> None:
    """Move one outbox row to the dead letters (nothing happens if it is not there or
    another instance claimed it)."""
    async with conn.transaction():
        moved = await conn.fetch(
            "DELETE FROM notifier_outbox WHERE id = $1 AND (claimed_by IS NULL"
            " OR claimed_by = $2) RETURNING id, event_seq, webhook, rules",
            delivery_id, instance)
        await conn.executemany(
            "INSERT INTO notifier_dead_letters (id, event_seq, webhook, rules, attempts,"
            " last_status, last_error, failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (id) DO UPDATE SET attempts = excluded.attempts,"
            " last_status = excluded.last_status, last_error = excluded.last_error,"
            " failed_at = excluded.failed_at",
            [(*row, attempts, last_status, last_error, now) for row in moved])


async def dead_letters(conn: Any) -> list[DeadLetter]:
    """Every dead letter, oldest first."""
    return rows.decode_dead_letters(await conn.fetch(
        select("notifier_dead_letters", "t.last_status", "t.last_error", "t.failed_at")
        + " ORDER BY t.failed_at, t.id"))


async def requeue_dead_letters(conn: Any, ids: Sequence[str], now: float) -> int:
    """Move dead letters back to the outbox, unclaimed, due at ``now``, 0 attempts."""
    return len(await conn.fetch(_MOVE_BACK, list(dict.fromkeys(ids)), now))


async def purge_dead_letters(conn: Any, ids: Sequence[str]) -> int:
    """Delete dead letters; return how many were deleted."""
    status = await conn.execute(
        "DELETE FROM notifier_dead_letters WHERE id = ANY($1::text[])", list(ids))
    return int(status.split()[-1])


async def requeue(conn: Any, deliveries: Sequence[Delivery], now: float) -> int:
    """Enqueue deliveries whether or not the ledger knows their events (replay)."""
    async with conn.transaction():
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


async def _ledger(conn: Any, deliveries: Sequence[Delivery]) -> dict[str, int]:
    """The ledger seq of each delivery's event, adding the events it does not know."""
    events = rows.page_events(deliveries)[0]
    await add_events(conn, [rows.event_values(e) for e in events.values()])
    found = await conn.fetch("SELECT id, seq FROM notifier_events WHERE id = ANY($1::text[])",
                             list(events))
    return {r["id"]: r["seq"] for r in found}


async def webhook_states(conn: Any) -> dict[str, WebhookState]:
    """Every saved webhook state, by name."""
    return rows.decode_webhook_states(await conn.fetch(
        f"SELECT {rows.WEBHOOK_STATE_COLUMNS} FROM notifier_webhook_state ORDER BY webhook"))


async def save_webhook_state(conn: Any, state: WebhookState, now: float) -> None:
    """Insert or replace one webhook's state."""
    await conn.execute(
        f"INSERT INTO notifier_webhook_state ({rows.WEBHOOK_STATE_COLUMNS}, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (webhook) DO UPDATE SET"
        " breaker = excluded.breaker, opened_at = excluded.opened_at,"
        " failing_since = excluded.failing_since,"
        " last_success_at = excluded.last_success_at,"
        " disabled_at = excluded.disabled_at,"
        " disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
        *rows.webhook_state_values(state, now))
