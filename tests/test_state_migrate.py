"""`notifier state migrate`: a SQLite state file moved into PostgreSQL, nothing lost or
doubled, and the password never printed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from notifier.events import CREATED, Delivery, Event
from notifier.polling.client import Defect
from notifier.polling.quarantine import keep
from notifier.store import RoomState, StoreStats
from notifier.store.postgres import PostgresStore
from notifier.store.sqlite import SQLiteStore
from tests.conftest import notifier_command
from tests.pg import PASSWORD


def _deliveries(n: int) -> list[Delivery]:
    event = Event.from_message(CREATED, "general", {"id": f"m{n}", "body": "ünïcode"},
                               ("rule",), 1.0)
    return [Delivery.for_webhook(event, w, ("rule",)) for w in ("crm", "mod")]


async def _seed(path: str) -> tuple[list[Delivery], list[Delivery]]:
    pending, dead = _deliveries(1) + _deliveries(2), _deliveries(3)
    async with SQLiteStore(path, instance="old") as store:
        await store.commit(RoomState("general", cursor="c9", last_id="m3"), pending + dead)
        sent = _deliveries(4)
        await store.commit_page(None, sent, keep("general", [Defect(0, "no id", {"a": 1})],
                                                 "cursor c8", 5.0))
        await store.delivered([d.id for d in sent])
        await store.claim_due(1e12, 1)  # a claim left behind must not block the target
        for d in dead:
            await store.dead_letter(d.id, 7, 500, "HTTP 500")
    return pending, dead


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *notifier_command(*args), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL, env=os.environ)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


async def test_migrate_moves_cursors_outbox_and_dead_letters_once(tmp_path: Path,
                                                                   pg_url: str) -> None:
    """Everything arrives; a second run adds nothing; delivered events stay deduped."""
    path = str(tmp_path / "notifier.db")
    pending, dead = await _seed(path)
    code, out = await _cli("state", "migrate", "--from", path, "--to", pg_url)
    assert code == 0, out
    assert ("1 room cursor(s), 4 event(s), 4 pending delivery(ies), 2 dead letter(s), "
            "1 quarantined message(s) copied") in out
    assert PASSWORD not in out
    code, again = await _cli("state", "migrate", "--from", path, "--to", pg_url)
    assert code == 0 and "4 event(s) the target already had were skipped" in again
    async with PostgresStore(pg_url) as pg:
        assert await pg.stats() == StoreStats(outbox=4, dead_letters=2, rooms=1,
                                              quarantined=1)  # and only once
        [kept] = await pg.quarantined()
        assert (kept.room, kept.raw, kept.position, kept.truncated) == (
            "general", '{"a":1}', "cursor c8, messages[0]", False)
        assert await pg.load_room("general") == RoomState("general", cursor="c9", last_id="m3")
        claimed = await pg.claim_due(1e12, 10)
        assert sorted(d.id for d in claimed) == sorted(d.id for d in pending)
        assert sorted((d.id, d.event.message["body"]) for d in claimed) == sorted(
            (d.id, d.event.message["body"]) for d in pending)
        assert sorted(dl.delivery.id for dl in await pg.dead_letters()) == sorted(
            d.id for d in dead)
        assert await pg.commit(None, _deliveries(4)) == []  # the ledger came along


async def test_migrate_refuses_a_file_a_runner_holds(tmp_path: Path, pg_url: str) -> None:
    """While `notifier run` holds the file, nothing is copied and the runner is named."""
    path = str(tmp_path / "notifier.db")
    async with SQLiteStore(path, exclusive=True):
        code, out = await _cli("state", "migrate", "--from", path, "--to", pg_url)
    assert code == 1 and "already running" in out
    async with PostgresStore(pg_url) as pg:
        assert await pg.stats() == StoreStats(0, 0, 0)
