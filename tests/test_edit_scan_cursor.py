"""An edit scan told its cursor is unknown (HTTP 400 invalid_cursor) starts the window
again, as a poll does, instead of failing the room: a failure backs the room off, and the
faults queued for it then arrive one per retry, each doubling the wait."""

from __future__ import annotations

import aiohttp

from notifier.store.sqlite import SQLiteStore
from notifier.testing import Fault, RoomlioEmulator
from tests.tailers import tailer_for

UNKNOWN_CURSOR = Fault.status(400, body={"code": "invalid_cursor", "message": "unknown cursor"})


async def test_an_unknown_cursor_in_an_edit_scan_restarts_the_window(
        emulator: RoomlioEmulator, make_config, tmp_path) -> None:
    """Refused three times in a row: the scan reads the window again each time (within
    max_pages_per_poll), commits the edit and raises nothing."""
    emulator.add_room(key="r1")
    posted = [emulator.post("r1", f"refund {i}") for i in range(3)]
    config = make_config(rooms=["r1"])
    async with SQLiteStore(str(tmp_path / "state.db")) as store, \
            aiohttp.ClientSession() as session:
        tailer = tailer_for(config, store, session, page_size=2)  # the window: two pages
        await tailer.poll()
        emulator.edit(posted[0]["id"], "refund 0, edited")
        emulator.inject(UNKNOWN_CURSOR, room="r1", times=3)
        seen = await tailer.scan_edits()
        assert seen == 3 and emulator.pending_faults == 0
        bodies = sorted(d.event.message["body"] for d, *_ in await store.outbox(10))
    assert bodies == ["refund 0", "refund 0, edited", "refund 1", "refund 2"]
