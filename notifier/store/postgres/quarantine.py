"""The PostgreSQL store's quarantine of messages the tail could not process (see
notifier.polling.quarantine); ``outbox.commit`` and ``schema.merge`` write it inside their
own transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from notifier.store import rows
from notifier.store.base import Quarantined

__all__ = ["INSERT", "insert", "remove", "select"]

#: Parameters: the QUARANTINE_COLUMNS, as arrays. Returns the ids of the rows kept (a
#: message read again adds nothing: ``(room, fingerprint)`` is unique).
INSERT = (f"INSERT INTO notifier_quarantine ({rows.QUARANTINE_COLUMNS}) SELECT * FROM unnest("
          "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
          " $7::boolean[], $8::float8[]) ON CONFLICT (room, fingerprint) DO NOTHING"
          " RETURNING id")


async def insert(conn: Any, quarantine: Sequence[Quarantined], now: float) -> int:
    """Keep ``quarantine`` (inside the caller's transaction); return how many were new."""
    if not quarantine:
        return 0
    values = [rows.quarantine_values(q, now) for q in quarantine]
    return len(await conn.fetch(INSERT, *(list(col) for col in zip(*values, strict=True))))


async def select(conn: Any, limit: int | None) -> list[Quarantined]:
    """Kept messages, oldest first (the newest ``limit`` when given)."""
    found = await conn.fetch(rows.select_quarantined("notifier_quarantine", limit))
    return rows.decode_quarantined(found, limit)


async def remove(conn: Any, ids: Sequence[int]) -> int:
    """Forget kept messages; return how many were removed."""
    status = await conn.execute("DELETE FROM notifier_quarantine WHERE id = ANY($1::bigint[])",
                                [int(i) for i in ids])
    return int(status.split()[-1])
