"""The PostgreSQL store's quarantine: messages the tail could not process, kept until
replayed or purged. Rows are written by ``outbox.commit`` in the page's own transaction
(so a crash never keeps a message and loses the cursor move, or the other way round).

A message is kept once per room: ``(room, fingerprint)`` is unique, so the same message
read again (a resumed tail, an edit scan) adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from notifier.store.base import Quarantined
from notifier.store.rows import (
    QUARANTINE_COLUMNS,
    decode_quarantined,
    quarantine_values,
    select_quarantined,
)

__all__ = ["INSERT", "insert", "remove", "select"]

#: Parameters: the QUARANTINE_COLUMNS, as arrays. Returns the ids of the rows kept.
INSERT = (f"INSERT INTO notifier_quarantine ({QUARANTINE_COLUMNS}) SELECT * FROM unnest("
          "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
          " $7::boolean[], $8::float8[]) ON CONFLICT (room, fingerprint) DO NOTHING"
          " RETURNING id")


async def insert(conn: Any, quarantine: Sequence[Quarantined], now: float) -> int:
    """Keep ``quarantine`` (inside the caller's transaction); return how many were new."""
    if not quarantine:
        return 0
    rows = [quarantine_values(q, now) for q in quarantine]
    return len(await conn.fetch(INSERT, *(list(col) for col in zip(*rows, strict=True))))


async def select(conn: Any, limit: int | None) -> list[Quarantined]:
    """Kept messages, oldest first (the newest ``limit`` when given)."""
    rows = await conn.fetch(select_quarantined("notifier_quarantine", limit))
    return decode_quarantined(rows, limit)


async def remove(conn: Any, ids: Sequence[int]) -> int:
    """Forget kept messages; return how many were removed."""
    status = await conn.execute("DELETE FROM notifier_quarantine WHERE id = ANY($1::bigint[])",
                                [int(i) for i in ids])
    return int(status.split()[-1])
