"""The quarantine: a defective message costs that message, never its page or its room. It
is kept (room, position, reason, the message, size-capped), counted, shown, listed by the
CLI, and replayable once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from notifier.errors import RoomlioTransientError
from notifier.polling.client import Defect, check_message, parse_page
from notifier.polling.quarantine import keep
from notifier.store import QUARANTINE_RAW_LIMIT, RoomState, StoreStats, open_store
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from notifier.util.time import parse_time
from tests.chaos import LogWatch, serve, write_config
from tests.conftest import API_KEY, SECRET, TEST_ENV, notifier_command
from tests.opsutil import ops_config, serving, until


def message(i: int, body: str = "refund please", created: str = "2026-11-25T10:00:00Z",
            **extra: Any) -> dict[str, Any]:
    """A complete Roomlio message with a crafted id."""
    return {"id": f"msg_crafted{i:04d}", "userID": "usr_x", "username": "", "first": "",
            "last": "", "visibility": "", "roomName": "", "userType": "member",
            "messageType": "user", "body": body, "links": [], "roomID": "rm_x",
            "createdAt": created, "editedAt": "0001-01-01T00:00:00Z", **extra}


def without(msg: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if k != key}


# -- the parser: a page stands, its bad messages are defects ------------------------------------


@pytest.mark.parametrize(("bad", "reason"), [
    (message(2, created="yesterday"), "createdAt 'yesterday' is not an ISO 8601 time"),
    (message(2, created="2026-13-01T00:00:00Z"), "is not an ISO 8601 time"),
    (message(2, created=""), "createdAt is an empty string, not a non-empty string"),
    (message(2, created=1609960385), "createdAt is a number, not a non-empty string"),
    (without(message(2), "id"), "id is missing or null, not a non-empty string"),
    (message(2, id=7), "id is a number, not a non-empty string"),
    (message(2, body={"b": 1}), "body is an object, not a string"),
    (message(2, links="http://x"), "links is a string, not a list"),
    ("just text", "the message is a string, not an object"),
    (message(2, created="\n2026 FORGED"), "createdAt '\\n2026 FORGED' is not"),
])
def test_a_bad_message_is_a_defect_of_its_page_not_an_error(bad, reason):
    """The page's good messages stand; the bad one is a defect saying what is wrong."""
    page = parse_page({"messages": [message(1), bad, message(3)], "hasMore": False})
    assert [m["id"] for m in page.messages] == ["msg_crafted0001", "msg_crafted0003"]
    [defect] = page.defects
    assert (defect.index, defect.message) == (1, bad)
    assert reason in defect.reason and "\n" not in defect.reason
    assert page.last_id == "msg_crafted0003"


def test_a_defective_last_message_with_an_id_is_the_tails_position():
    """The tail resumes after a bad message with a usable id, not before it (where it would
    read it, and quarantine it, again)."""
    page = parse_page({"messages": [message(1), message(2, created="never")]})
    assert page.last_id == "msg_crafted0002"


#: Every field the parser checks, and a value of each JSON type (and the empty string).
_FIELDS = ("id", "createdAt", "body", "editedAt", "messageType", "userType", "roomID",
           "links", "userID")
_VALUES = (None, "", "x", "2026-11-25T10:00:00Z", 7, 1.5, True, [], ["l"], {}, {"a": 1})


@pytest.mark.parametrize("field", _FIELDS)
def test_the_parser_turns_down_exactly_what_check_message_finds_wrong(field):
    """For each field set to each kind of JSON value (or left out), the page keeps the
    message exactly when check_message finds nothing wrong, and gives its reason when it
    does not: the parser's quick test of a message agrees with the full one."""
    for value in (*_VALUES, "missing"):
        msg = without(message(1), field) if value == "missing" else message(1, **{field: value})
        page = parse_page({"messages": [msg]})
        reason = check_message(msg)
        assert [d.reason for d in page.defects] == ([] if reason is None else [reason]), msg
        assert list(page.messages) == ([msg] if reason is None else []), msg


def test_a_page_knows_the_newest_created_at_of_its_messages():
    """Page.newest is the latest createdAt of the well-formed messages, in any order and
    any offset; a defective message's time does not count; no messages, no time."""
    page = parse_page({"messages": [
        message(1, created="2026-11-25T10:00:05+02:00"),
        message(2, created="2026-11-25T09:00:00Z"),
        message(3, created="2026-11-25T08:30:00Z"),
        message(4, created="2027-01-01T00:00:00Z", id=4),
    ]})
    assert page.newest == parse_time("2026-11-25T09:00:00Z")
    assert parse_page({"messages": [message(4, created="never")]}).newest is None


@pytest.mark.parametrize("answer", [
    [message(1)], {"messages": None}, {"messages": {"0": message(1)}},
    {"messages": [], "hasMore": "yes"}, {"messages": [], "nextCursor": 5},
])
def test_a_page_malformed_as_a_whole_is_still_a_retried_error(answer):
    """Not an object, no message list, or a wrong hasMore/nextCursor: retried, not kept."""
    with pytest.raises(RoomlioTransientError, match="malformed page"):
        parse_page(answer)


def test_a_kept_message_is_capped_and_marked_truncated():
    """A message over 64 KiB is kept cut, and marked so (it can be read, not replayed)."""
    big = message(1, body="x" * (2 * QUARANTINE_RAW_LIMIT), created="never")
    small = message(2, created="never")
    kept = keep("r1", [Defect(0, "why", big), Defect(1, "why", small)], "cursor c1", 5.0)
    assert len(kept[0].raw) == QUARANTINE_RAW_LIMIT and kept[0].truncated
    assert json.loads(kept[1].raw) == small and not kept[1].truncated
    assert kept[1].position == "cursor c1, messages[1]"
    assert (kept[1].message_id, kept[1].room, kept[1].quarantined_at) == (
        "msg_crafted0002", "r1", 5.0)
    assert kept[0].fingerprint != kept[1].fingerprint


# -- the store: both implementations ---------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """The contract runs against both implementations (PostgreSQL: a real server)."""
    url = (str(tmp_path / "state.db") if request.param == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    opened: Any = open_store(url)
    async with opened:
        yield opened


def _defects(*bodies: str) -> list[Defect]:
    return [Defect(i, f"createdAt is bad ({b})", message(i, b, created="never"))
            for i, b in enumerate(bodies)]


async def test_the_store_keeps_quarantined_messages_with_the_cursor_move_once_each(store):
    """commit_page keeps the page's defective messages with its cursor; the same message
    read again is kept once; stats count them; remove forgets them."""
    first = keep("r1", _defects("a", "b"), "cursor c0", 100.0)
    added, kept = await store.commit_page(RoomState("r1", cursor="c1"), [], first)
    assert (added, kept) == ([], 2)
    again = keep("r1", _defects("a", "c"), "cursor c1", 200.0)  # "a" read again
    assert (await store.commit_page(RoomState("r1", cursor="c2"), [], again))[1] == 1
    assert (await store.load_room("r1")).cursor == "c2"
    items = await store.quarantined()
    assert [(q.room, json.loads(q.raw)["body"], q.position, q.quarantined_at) for q in items] == [
        ("r1", "a", "cursor c0, messages[0]", 100.0), ("r1", "b", "cursor c0, messages[1]", 100.0),
        ("r1", "c", "cursor c1, messages[1]", 200.0)]
    assert items[0].reason == "createdAt is bad (a)" and items[0].message_id == "msg_crafted0000"
    assert [q.id for q in await store.quarantined(limit=2)] == [items[1].id, items[2].id]
    assert await store.stats() == StoreStats(outbox=0, dead_letters=0, rooms=1, quarantined=3)
    # the same message in another room is another record
    assert (await store.commit_page(None, [], keep("r2", _defects("a"), "x", 1.0)))[1] == 1
    assert await store.remove_quarantined([items[0].id, items[1].id, 999_999]) == 2
    assert [(q.room, json.loads(q.raw)["body"]) for q in await store.quarantined()] == [
        ("r2", "a"), ("r1", "c")]  # oldest first


# -- the service: the rest of the page, and the room, go on ---------------------------------------


async def test_a_poisoned_message_is_quarantined_and_its_room_goes_on(tmp_path):
    """An unparsable createdAt made the whole page a retried error: the room delivered
    nothing more, for good. Now its neighbours on the page and later messages arrive, and
    the bad one is kept, once, with its room, position and reason."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="r1")
        emu.add_room(key="r2")
        config = write_config(tmp_path, emu.url, rx.url, rooms=["r1", "r2"])
        poisoned = {"messages": [message(1, "refund one"),
                                 message(2, "refund poisoned", created="yesterday"),
                                 message(3, "refund three")], "hasMore": False}
        emu.inject(Fault.status(200, body=poisoned), room="r1", times=3)
        counted: list[tuple[str, int]] = []
        with LogWatch() as logs:
            async with serve(config, hooks=_hooks(counted)) as run:
                await run.until(rx.wait_count(2, timeout=10))
                await run.until(emu.wait_for(lambda e: e.pending_faults == 0))
                emu.post("r1", "refund later")
                emu.post("r2", "refund elsewhere")
                await run.until(rx.wait_count(4, timeout=10))
                items = await run.service.store.quarantined()
    assert sorted(r.json["data"]["message"]["body"] for r in rx.received) == [
        "refund elsewhere", "refund later", "refund one", "refund three"]
    [item] = items
    assert (item.room, item.message_id, json.loads(item.raw)) == (
        "r1", "msg_crafted0002", poisoned["messages"][1])
    assert "createdAt 'yesterday' is not an ISO 8601 time" in item.reason
    assert item.position.endswith("messages[1]")
    assert counted == [("r1", 1)]
    assert logs.count("quarantined") == 1


def _hooks(counted: list[tuple[str, int]]) -> Any:
    from notifier.runtime.service import ServiceHooks

    return ServiceHooks(on_quarantined=lambda room, n: counted.append((room, n)))


async def test_quarantine_shows_on_the_status_api_and_in_the_metric(emulator, receiver, tmp_path):
    """/api/status lists kept messages (their text redacted like the rest); the counter
    notifier_quarantined_messages_total counts them by room."""
    emulator.add_room(key="r1")
    bad = message(1, f"echo {API_KEY}", created="never")
    emulator.inject(Fault.status(200, body={"messages": [bad, bad]}), room="r1")
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"])
    async with serving(config) as s:
        await until(lambda: s.sample("notifier_quarantined_messages_total", room="r1") == 1)
        _, body = await s.get("/api/status")
        _, metrics = await s.get("/metrics")
    status = json.loads(body)
    assert status["quarantine_total"] == 1
    [row] = status["quarantine"]
    assert (row["room"], row["message_id"]) == ("r1", "msg_crafted0001")
    assert "not an ISO 8601 time" in row["reason"] and "messages[" in row["position"]
    assert API_KEY not in body and "[roomlio.api_key]" in row["message"]
    assert 'notifier_quarantined_messages_total{room="r1"} 1.0' in metrics
    assert "notifier_quarantined_messages_stored 1.0" in metrics


# -- the command line ---------------------------------------------------------------------------


async def _cli(*args: str, command: str = "quarantine") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *notifier_command(command, *args), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **TEST_ENV})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_lists_replays_what_now_passes_and_purges(tmp_path, receiver):
    """`quarantine list --json` shows what was kept; `replay --all` enqueues what today's
    parser and rules make of the messages that now pass (as after a parser fix) and keeps
    the rest, saying why; `purge --yes` forgets."""
    path = write_config(tmp_path, "http://127.0.0.1:1/rpc", receiver.url, rooms=["r1"],
                        load=False)
    fixed = message(1, "refund now readable")      # kept by an older, stricter parser
    broken = message(2, "refund still broken", created="never")
    store = open_store(str(tmp_path / "state.db"))
    async with store:
        kept = keep("r1", [Defect(0, "old parser refused it", fixed),
                           Defect(1, "createdAt 'never' is not an ISO 8601 time", broken)],
                    "cursor c1", 1000.0)
        await store.commit_page(RoomState("r1", cursor="c2"), [], kept)
    code, out, _ = await _cli("list", "--json", "--config", str(path))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [json.loads(r["message"]) for r in rows] == [fixed, broken]
    assert rows[0]["position"] == "cursor c1, messages[0]" and rows[0]["room"] == "r1"
    code, out, _ = await _cli("--config", str(path), command="status")
    assert code == 0 and "quarantined: 2" in out
    code, out, err = await _cli("replay", "--all", "--config", str(path))
    assert code == 1, out + err  # one message is still held
    assert "1 message(s) replayed" in out and "1 delivery(ies) enqueued" in out
    assert f"{rows[1]['id']}: still defective: createdAt 'never'" in err
    async with store:
        [(delivery, *_)] = await store.outbox()
        assert delivery.event.message == fixed and delivery.webhook == "crm"
        assert [q.message_id for q in await store.quarantined()] == ["msg_crafted0002"]
    code, out, _ = await _cli("purge", "--all", "--config", str(path))
    assert code == 64  # not a terminal, no --yes: nothing purged
    code, out, _ = await _cli("purge", "--yes", str(rows[1]["id"]), "--config", str(path))
    assert code == 0 and "1 quarantined message(s) purged" in out
    async with store:
        assert await store.quarantined() == []
