"""Claims, releases and completions of more deliveries than one SQL statement binds
(the SQLite store runs them ``IN (...)`` a chunk at a time), on a real state file."""

from __future__ import annotations

import time
from pathlib import Path

from notifier.events import Delivery, Event
from notifier.store.sqlite import SQLiteStore
from notifier.store.sqlite.outbox import _CHUNK


def _deliveries(n: int) -> list[Delivery]:
    out = []
    for i in range(n):
        message = {"id": f"msg_{i:08d}", "body": "refund", "userID": "usr_1",
                   "createdAt": "2026-11-25T10:00:02Z", "editedAt": "0001-01-01T00:00:00Z"}
        event = Event.from_message("message.created", "r1", message, ("refunds",), 1.0)
        out.append(Delivery.for_webhook(event, "crm", ("refunds",)))
    return out


async def test_claim_release_and_delivered_cover_every_chunk(tmp_path: Path):
    n = 2 * _CHUNK + 7
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.open()
    try:
        await store.commit_page(None, _deliveries(n), [])
        now = time.time() + 1
        claimed = await store.claim_due(now, n)
        assert len(claimed) == n
        assert await store.claim_due(now, n) == []  # every row is marked claimed
        await store.release([d.id for d in claimed])
        again = await store.claim_due(now, n)
        assert sorted(d.id for d in again) == sorted(d.id for d in claimed)
        await store.delivered([d.id for d in again])
        assert (await store.stats()).outbox == 0
    finally:
        await store.close()
