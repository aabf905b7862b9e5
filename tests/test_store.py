"""SQLiteStore against real files: the outbox contract, atomicity, durability, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import notifier.util.json
from notifier.errors import StoreError
from notifier.events import CREATED, EDITED, NEVER_EDITED, Delivery, Event
from notifier.store import RoomState, StoreStats, open_store, rows
from notifier.store.sqlite import SQLiteStore
from notifier.store.sqlite import schema as schema

RULES = ("late-orders",)
ROOT = Path(__file__).resolve().parents[1]


def make_event(n: int = 1, *, detected_at: float = 1000.0, edited: str | None = None,
               **fields: Any) -> Event:
    message = {"id": f"m{n}", "text": f"order #{n} is late", "user": {"id": "u1"},
               "editedAt": edited or NEVER_EDITED, **fields}
    return Event.from_message(EDITED if edited else CREATED, "general", message, RULES,
                              detected_at)


def deliveries(event: Event, *webhooks: str) -> list[Delivery]:
    return [Delivery.for_webhook(event, w, RULES) for w in webhooks or ("crm", "slack")]


def later() -> float:
    return time.time() + 3600


def write(path: str, data: bytes, offset: int = 0) -> None:
    """Put ``data`` into the file at ``offset`` (creating it), as a crash or a person might."""
    with open(path, "r+b" if os.path.exists(path) else "wb") as f:
        f.seek(offset)
        f.write(data)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@contextlib.contextmanager
def raw(path: str) -> Iterator[sqlite3.Connection]:
    """A plain connection to the file, as another program (or a test's saboteur) opens it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


@pytest.fixture
async def sqlite_store(path: str) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(path) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, path: str) -> str:
    """The contract suite runs against both implementations (PostgreSQL: a real server)."""
    return path if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SQLiteStore]:
    opened: Any = open_store(store_url)
    async with opened:
        yield opened


# --- commit and the ledger ---------------------------------------------------------------

async def test_commit_saves_room_state_and_deliveries_together(store: SQLiteStore) -> None:
    """A commit stores the cursor and returns the deliveries it added to the outbox."""
    batch = deliveries(make_event(1))
    state = RoomState("general", cursor="c1", last_id="m1", high_water="2024-05-01T10:00:00Z")
    assert await store.commit(state, batch) == batch
    assert await store.load_room("general") == state
    assert await store.stats() == StoreStats(outbox=2, dead_letters=0, rooms=1)


async def test_load_room_of_a_room_never_tailed_is_none(store: SQLiteStore) -> None:
    """A room without saved state loads as None."""
    assert await store.load_room("nowhere") is None


async def test_commit_without_state_keeps_the_saved_cursor(store: SQLiteStore) -> None:
    """Committing deliveries alone leaves the room's cursor as it was."""
    await store.commit(RoomState("general", cursor="c1"), [])
    await store.commit(None, deliveries(make_event(1)))
    assert await store.load_room("general") == RoomState("general", cursor="c1")


async def test_repeated_event_adds_no_deliveries(store: SQLiteStore) -> None:
    """An event already in the ledger adds nothing, though its page's cursor still moves."""
    batch = deliveries(make_event(1))
    await store.commit(RoomState("general", cursor="c1"), batch)
    assert await store.commit(RoomState("general", cursor="c2"), batch) == []
    assert (await store.stats()).outbox == 2
    assert await store.load_room("general") == RoomState("general", cursor="c2")


async def test_event_repeated_after_delivery_is_not_sent_again(store: SQLiteStore) -> None:
    """The ledger outlives the outbox row: a delivered event re-read is not re-queued."""
    batch = deliveries(make_event(1))
    await store.commit(None, batch)
    await store.delivered([d.id for d in batch])
    assert await store.commit(None, batch) == []


async def test_edited_version_of_a_message_is_a_new_event(store: SQLiteStore) -> None:
    """A new editedAt makes a new event, so its deliveries are added."""
    await store.commit(None, deliveries(make_event(1)))
    edited = deliveries(make_event(1, edited="2024-05-01T10:05:00Z"))
    assert await store.commit(None, edited) == edited


async def test_duplicates_within_one_commit_are_stored_once(store: SQLiteStore) -> None:
    """A page that repeats a delivery adds it once."""
    batch = deliveries(make_event(1), "crm")
    assert await store.commit(None, batch + batch) == batch
    assert (await store.stats()).outbox == 1


@pytest.mark.parametrize("json_library", ["orjson", "json"])
@pytest.mark.parametrize("message", [
    {"text": "naïve café ☕ 🚀", "nested": {"list": [1, 2.5, None, True, {"k": []}]}},
    {"floats": [0.1, 1e300, -0.0], "ints": [0, -1, 2**63 - 1], "empty": {}},
    {"huge": 2**80 + 1},
    {"read_only": MappingProxyType({"a": [1]})},
], ids=["unicode-and-nesting", "numbers", "beyond-64-bits", "any-mapping"])
async def test_message_round_trips_exactly(store: SQLiteStore, message: dict[str, Any],
                                           json_library: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The event read back from the outbox equals the one committed, message and all."""
    if json_library == "json":  # orjson is optional: the standard library must do as well
        monkeypatch.setattr(notifier.util.json, "orjson", None)
    event = make_event(1, **message)
    await store.commit(None, deliveries(event, "crm"))
    [claimed] = await store.claim_due(later(), 10)
    assert claimed.event == event
    assert claimed == Delivery.for_webhook(event, "crm", RULES)


async def test_a_large_page_with_known_events_adds_only_the_new_ones(
        store: SQLiteStore) -> None:
    """A page of several hundred deliveries (written many rows per statement) with
    events the ledger knows scattered through it adds exactly the others, each bound to
    its own event, and says which."""
    events = [make_event(n, detected_at=1000.0 + n) for n in range(300)]
    known = [e for n, e in enumerate(events) if n % 7 == 3]
    await store.commit(None, [d for e in known for d in deliveries(e, "crm")])
    page = [d for e in events for d in deliveries(e, "crm", "slack")]
    fresh = [d for d in page if d.event not in known]
    assert await store.commit(None, page + page[:5]) == fresh
    claimed = await store.claim_due(later(), 1000)
    assert sorted(claimed, key=lambda d: d.id) == sorted(
        fresh + [d for d in page if d.event in known and d.webhook == "crm"],
        key=lambda d: d.id)


@pytest.mark.parametrize("detected_at", [1796065736.8647668, 1e-7 + 1700000000, 0.1])
async def test_claimed_event_keeps_its_detection_time_to_the_last_bit(
        store: SQLiteStore, detected_at: float) -> None:
    """A time read back from the outbox is the same double (17 significant digits), not
    one rounded on the way (SQLite's JSON keeps 15)."""
    event = make_event(1, detected_at=detected_at)
    await store.commit(None, deliveries(event, "crm"))
    [claimed] = await store.claim_due(later(), 10)
    assert claimed.event.detected_at == detected_at


# --- atomicity ---------------------------------------------------------------------------

async def _assert_unchanged_then_retry(store: SQLiteStore, retry: list[Delivery]) -> None:
    assert await store.load_room("general") == RoomState("general", cursor="c1")
    assert [d.id for d, *_ in await store.outbox()] == [d.id for d in deliveries(make_event(1))]
    # The ledger rolled back too: the same page committed again adds its deliveries.
    assert await store.commit(RoomState("general", cursor="c2"), retry) == retry


async def test_commit_failing_midway_leaves_cursor_outbox_and_ledger_unchanged(
        sqlite_store: SQLiteStore, path: str) -> None:
    """A failure on the last outbox row undoes the events, the other rows and the cursor."""
    store = sqlite_store
    await store.commit(RoomState("general", cursor="c1"), deliveries(make_event(1)))
    with raw(path) as conn:
        conn.execute("CREATE TRIGGER sabotage BEFORE INSERT ON outbox"
                     " WHEN NEW.webhook = 'broken' BEGIN SELECT RAISE(ABORT, 'injected'); END")
    page = deliveries(make_event(2)) + deliveries(make_event(3), "crm", "broken")
    with pytest.raises(StoreError, match="commit failed: injected"):
        await store.commit(RoomState("general", cursor="c2"), page)
    with raw(path) as conn:
        conn.execute("DROP TRIGGER sabotage")
    await _assert_unchanged_then_retry(store, page)


async def test_unserializable_message_fails_the_whole_commit(store: SQLiteStore) -> None:
    """A message that cannot become JSON fails the commit and nothing of it is saved."""
    await store.commit(RoomState("general", cursor="c1"), deliveries(make_event(1)))
    good = deliveries(make_event(2))
    bad = deliveries(make_event(3, attachment=object()))
    culprit = re.escape(f"the message of event {bad[0].event.id} cannot be stored as JSON")
    with pytest.raises(StoreError, match=culprit):  # named: the culprit, not just "a message"
        await store.commit(RoomState("general", cursor="c2"), good + bad)
    await _assert_unchanged_then_retry(store, good)


async def test_disk_full_fails_the_commit_clearly_and_keeps_state(
        sqlite_store: SQLiteStore) -> None:
    """When the file cannot grow, the commit says so and the previous state stays."""
    store = sqlite_store
    await store.commit(RoomState("general", cursor="c1"), deliveries(make_event(1)))
    await store._run("filling the disk", lambda c: c.execute(
        f"PRAGMA max_page_count = {c.execute('PRAGMA page_count').fetchone()[0]}"))
    page = [d for n in range(2, 500) for d in deliveries(make_event(n, padding="x" * 500))]
    with pytest.raises(StoreError, match=r"disk full while writing .*state\.db"):
        await store.commit(RoomState("general", cursor="c2"), page)
    await store._run("freeing the disk", lambda c: c.execute("PRAGMA max_page_count = 1000000"))
    await _assert_unchanged_then_retry(store, page)


async def test_write_lock_held_elsewhere_fails_the_commit_clearly(path: str) -> None:
    """A commit that cannot get the write lock in time says who holds what, and saves nothing."""
    async with SQLiteStore(path, busy_timeout=0.05) as store:
        await store.commit(RoomState("general", cursor="c1"), deliveries(make_event(1)))
        with raw(path) as conn:
            conn.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match=r"database is locked \(another process"):
                await store.commit(RoomState("general", cursor="c2"), deliveries(make_event(2)))
            conn.execute("ROLLBACK")
        await _assert_unchanged_then_retry(store, deliveries(make_event(2)))


# --- the outbox --------------------------------------------------------------------------

async def _spread(store: SQLiteStore, due: dict[str, float]) -> dict[str, Delivery]:
    """Commit one delivery per entry of ``due`` ("event/webhook") and make each due then."""
    batch = {key: Delivery.for_webhook(make_event(int(key.split("/")[0])), key.split("/")[1],
                                       RULES) for key in due}
    await store.commit(None, list(batch.values()))
    await store.claim_due(later(), 100)
    for key, at in due.items():
        await store.reschedule(batch[key].id, 0, at, None, "")
    await store.release([d.id for d in batch.values()])
    return batch


async def test_claim_due_skips_deliveries_not_yet_due(store: SQLiteStore) -> None:
    """A delivery committed now is not due at an earlier time, and is due later."""
    await store.commit(None, deliveries(make_event(1)))
    assert await store.claim_due(0.0, 10) == []
    assert len(await store.claim_due(later(), 10)) == 2


async def test_claim_due_returns_oldest_first_up_to_limit(store: SQLiteStore) -> None:
    """Due deliveries come oldest first, never more than the limit, never ones not yet due."""
    batch = await _spread(store, {"1/crm": 300.0, "2/crm": 100.0, "3/crm": 200.0})
    assert await store.claim_due(250.0, 1) == [batch["2/crm"]]
    assert await store.claim_due(250.0, 10) == [batch["3/crm"]]
    assert await store.claim_due(1000.0, 0) == []


async def test_claim_due_skips_excluded_and_already_claimed(store: SQLiteStore) -> None:
    """Excluded ids and deliveries already claimed are not handed out."""
    batch = await _spread(store, {"1/crm": 100.0, "2/crm": 200.0, "3/crm": 300.0})
    assert await store.claim_due(1000.0, 1) == [batch["1/crm"]]
    excluded = frozenset({batch["2/crm"].id})
    assert await store.claim_due(1000.0, 10, excluded) == [batch["3/crm"]]
    assert await store.claim_due(1000.0, 10) == [batch["2/crm"]]


async def test_claim_due_fills_its_limit_past_excluded_rows(store: SQLiteStore) -> None:
    """Excluded ids among the oldest rows do not shorten a claim: the limit is filled
    from the rows after them, for every webhook and for chosen ones."""
    batch = await _spread(store, {f"{n}/crm": 100.0 * n for n in range(1, 7)})
    excluded = frozenset({batch["1/crm"].id, batch["3/crm"].id})
    assert await store.claim_due(1000.0, 3, excluded) == [
        batch["2/crm"], batch["4/crm"], batch["5/crm"]]
    await store.release([batch["2/crm"].id, batch["4/crm"].id, batch["5/crm"].id])
    assert await store.claim_due(1000.0, 3, excluded, webhooks=["crm"]) == [
        batch["2/crm"], batch["4/crm"], batch["5/crm"]]


async def test_claim_due_for_some_webhooks_keeps_global_age_order(store: SQLiteStore) -> None:
    """Claiming for chosen webhooks leaves the others and still takes the oldest first."""
    batch = await _spread(store, {"1/crm": 100.0, "1/slack": 50.0, "2/crm": 20.0,
                                  "2/teams": 10.0, "3/slack": 30.0})
    claimed = await store.claim_due(1000.0, 3, webhooks=["crm", "slack"])
    assert claimed == [batch["2/crm"], batch["3/slack"], batch["1/slack"]]
    assert await store.claim_due(1000.0, 10, webhooks=[]) == []
    assert await store.claim_due(1000.0, 10) == [batch["2/teams"], batch["1/crm"]]


async def _queues(store: SQLiteStore, rooms: dict[str, int],
                  *webhooks: str) -> dict[str, list[Delivery]]:
    """Commit ``rooms[room]`` events per room, interleaved, each to ``webhooks``; return
    each "room/webhook" queue in ledger order."""
    queues: dict[str, list[Delivery]] = {}
    for n in range(max(rooms.values())):
        for r, (room, count) in enumerate(rooms.items()):
            if n < count:
                event = replace(make_event(10 * n + r + 1), room=room)
                for d in deliveries(event, *webhooks):
                    queues.setdefault(f"{room}/{d.webhook}", []).append(d)
                await store.commit(None, deliveries(event, *webhooks))
    return queues


async def test_ordered_claim_takes_one_head_per_room_and_waits_for_it(
        store: SQLiteStore) -> None:
    """An ordered webhook gets each room's oldest delivery, then nothing there until
    that one leaves the outbox; an unordered webhook beside it gets everything."""
    q = await _queues(store, {"a": 3, "b": 2}, "crm", "slack")
    claimed = await store.claim_due(later(), 100, ordered=["crm"])
    assert {d.id for d in claimed if d.webhook == "crm"} == {q["a/crm"][0].id, q["b/crm"][0].id}
    assert len([d for d in claimed if d.webhook == "slack"]) == 5
    assert await store.claim_due(later(), 100, ordered=["crm"]) == []
    await store.delivered([q["a/crm"][0].id])
    assert await store.claim_due(later(), 100, ordered=["crm"]) == [q["a/crm"][1]]
    await store.delivered([q["b/crm"][0].id])
    assert await store.claim_due(later(), 100, webhooks=["crm"],
                                 ordered=["crm"]) == [q["b/crm"][1]]


async def test_ordered_head_being_retried_blocks_its_room_until_dead_lettered(
        store: SQLiteStore) -> None:
    """A head waiting for its next attempt, claimed or not, holds back the rest of its
    room; once dead-lettered, the next delivery of that room is claimed."""
    q = await _queues(store, {"a": 2}, "crm")
    head, second = q["a/crm"]
    assert await store.claim_due(later(), 10, ordered=["crm"]) == [head]
    await store.reschedule(head.id, 1, later() + 60, 500, "HTTP 500")
    await store.release([head.id])  # unclaimed, but not yet due: still the head
    assert await store.claim_due(later(), 10, ordered=["crm"]) == []
    assert await store.claim_due(later(), 10, frozenset({head.id}), ordered=["crm"]) == []
    await store.dead_letter(head.id, 1, 500, "HTTP 500")
    assert await store.claim_due(later(), 10, ordered=["crm"]) == [second]


async def test_ordered_claims_racing_from_two_instances_take_each_head_once(
        store: SQLiteStore, store_url: str) -> None:
    """Two instances claiming an ordered webhook at the same moment take each room's
    head once between them, and nothing behind it."""
    q = await _queues(store, {"a": 3, "b": 3, "c": 3}, "crm")
    other: Any = open_store(store_url, instance="other")
    async with other:
        for _ in range(5):
            mine, theirs = await asyncio.gather(
                store.claim_due(later(), 100, ordered=["crm"]),
                other.claim_due(later(), 100, ordered=["crm"]))
            assert sorted(d.id for d in mine + theirs) == sorted(
                queue[0].id for queue in q.values())
            await store.delivered([d.id for d in mine + theirs])
            q = {room: queue[1:] for room, queue in q.items() if queue[1:]}
            if not q:
                break
    assert not q and await store.claim_due(later(), 100, ordered=["crm"]) == []


async def test_next_due_of_an_ordered_webhook_counts_only_claimable_heads(
        store: SQLiteStore) -> None:
    """Rows waiting behind a claimed or not-yet-due head are not due for an ordered
    webhook, so the sender sleeps until the head's retry instead of polling."""
    q = await _queues(store, {"a": 3}, "crm")
    head = q["a/crm"][0]
    assert await store.next_due(ordered=["crm"]) == await store.next_due()
    await store.claim_due(later(), 10, ordered=["crm"])
    assert await store.next_due(ordered=["crm"]) is None
    assert await store.next_due() is not None  # unordered, the rows behind look due
    retry_at = later() + 60
    await store.reschedule(head.id, 1, retry_at, 500, "HTTP 500")
    await store.release([head.id])
    assert await store.next_due(ordered=["crm"]) == retry_at


async def test_next_due_is_the_earliest_unclaimed_time(store: SQLiteStore) -> None:
    """next_due ignores claimed deliveries and is None once nothing is waiting."""
    assert await store.next_due() is None
    batch = await _spread(store, {"1/crm": 100.0, "2/crm": 200.0})
    assert await store.next_due() == 100.0
    await store.claim_due(150.0, 10)
    assert await store.next_due() == 200.0
    await store.delivered([batch["2/crm"].id])
    assert await store.next_due() is None


async def test_reschedule_records_the_attempt_and_keeps_the_claim(store: SQLiteStore) -> None:
    """A rescheduled delivery stays claimed; once released it comes back with its attempts."""
    [delivery] = deliveries(make_event(1), "crm")
    await store.commit(None, [delivery])
    await store.claim_due(later(), 10)
    await store.reschedule(delivery.id, 3, 100.0, 503, "HTTP 503 Service Unavailable")
    assert await store.claim_due(later(), 10) == []
    assert await store.outbox() == [
        (replace(delivery, attempts=3), 100.0, 503, "HTTP 503 Service Unavailable")]
    await store.release([delivery.id])
    [again] = await store.claim_due(later(), 10)
    assert again.attempts == 3


async def test_delivered_removes_only_the_given_deliveries(store: SQLiteStore) -> None:
    """delivered deletes exactly the rows named, in one call."""
    crm, slack = deliveries(make_event(1))
    await store.commit(None, [crm, slack])
    await store.delivered([crm.id, "msg_unknown"])
    assert [d for d, *_ in await store.outbox()] == [slack]


async def test_dead_letter_moves_the_delivery_and_lists_oldest_first(store: SQLiteStore) -> None:
    """Dead letters leave the outbox, keep their last error, and are listed in failure order."""
    first, second = deliveries(make_event(2), "crm") + deliveries(make_event(1), "crm")
    await store.commit(None, [first, second])
    before = time.time()
    await store.dead_letter(first.id, 5, 500, "HTTP 500")
    await store.dead_letter(second.id, 1, None, "HTTP 410 Gone")
    await store.dead_letter("msg_unknown", 1, None, "not in the outbox")
    letters = await store.dead_letters()
    assert [(dl.delivery.id, dl.delivery.attempts, dl.last_status, dl.last_error)
            for dl in letters] == [(first.id, 5, 500, "HTTP 500"),
                                   (second.id, 1, None, "HTTP 410 Gone")]
    assert letters[0].delivery.event == first.event
    assert before <= letters[0].failed_at <= letters[1].failed_at <= time.time()
    assert await store.stats() == StoreStats(outbox=0, dead_letters=2, rooms=0)


async def test_prune_keeps_events_still_referenced(store: SQLiteStore) -> None:
    """Only old events with no outbox row and no dead letter are forgotten."""
    old_sent, old_waiting, old_dead = (make_event(n, detected_at=100.0) for n in (1, 2, 3))
    new_sent = make_event(4, detected_at=900.0)
    batch = {e.id: Delivery.for_webhook(e, "crm", RULES)
             for e in (old_sent, old_waiting, old_dead, new_sent)}
    await store.commit(None, list(batch.values()))
    await store.delivered([batch[old_sent.id].id, batch[new_sent.id].id])
    await store.dead_letter(batch[old_dead.id].id, 1, 410, "gone")
    assert await store.prune(older_than=500.0) == 1
    # Forgotten: read again, it is new. Kept: read again, still deduped.
    assert await store.commit(None, [batch[old_sent.id]]) == [batch[old_sent.id]]
    kept = [batch[e.id] for e in (old_waiting, old_dead, new_sent)]
    assert await store.commit(None, kept) == []


async def test_rooms_lists_every_saved_room(store: SQLiteStore) -> None:
    """rooms() lists saved room states by name."""
    await store.commit(RoomState("support", cursor="s1"), [])
    await store.commit(RoomState("general", cursor="g1", last_id="m9"), [])
    assert await store.rooms() == [RoomState("general", cursor="g1", last_id="m9"),
                                   RoomState("support", cursor="s1")]


# --- durability --------------------------------------------------------------------------

async def test_reopened_store_keeps_everything(path: str) -> None:
    """Cursor, outbox rows with their attempts, dead letters and ledger survive a reopen."""
    crm, slack = deliveries(make_event(1))
    async with SQLiteStore(path) as store:
        await store.commit(RoomState("general", cursor="c1"), [crm, slack])
        await store.claim_due(later(), 10)
        await store.reschedule(crm.id, 2, 100.0, 502, "bad gateway")
        await store.dead_letter(slack.id, 4, 400, "bad request")
    async with SQLiteStore(path) as store:
        assert await store.load_room("general") == RoomState("general", cursor="c1")
        assert await store.outbox() == [(replace(crm, attempts=2), 100.0, 502, "bad gateway")]
        assert [dl.delivery.id for dl in await store.dead_letters()] == [slack.id]
        assert await store.commit(None, [crm, slack]) == []


CRASHING_WRITER = """
import asyncio, signal, sys
from notifier.events import Delivery, Event
from notifier.store import RoomState
from notifier.store.sqlite import SQLiteStore

async def main():
    store = SQLiteStore(sys.argv[1], exclusive=True)
    await store.open()
    event = Event.from_message("message.created", "general", {"id": "m1"}, ("r",), 1.0)
    added = await store.commit(RoomState("general", cursor="c1"),
                               [Delivery.for_webhook(event, "crm", ("r",))])
    claimed = await store.claim_due(1e12, 10)
    print(len(added), len(claimed), flush=True)
    signal.pause()

asyncio.run(main())
"""


async def test_commit_survives_sigkill_of_the_writer_process(path: str) -> None:
    """Once commit returned, killing the process loses nothing, and its lock and claims lapse."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_WRITER, path, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()  # type: ignore[union-attr]
        assert line == b"1 1\n", (await proc.stderr.read()).decode()  # type: ignore[union-attr]
        with pytest.raises(StoreError, match=f"pid {proc.pid}"):
            await SQLiteStore(path, exclusive=True).open()
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.communicate()
    async with SQLiteStore(path, exclusive=True) as store:
        assert await store.load_room("general") == RoomState("general", cursor="c1")
        [delivery] = await store.claim_due(later(), 10)
        assert delivery.webhook == "crm"


# --- opening: refusals, locks, versions ----------------------------------------------------

async def test_new_file_gets_our_schema_in_wal_mode(path: str) -> None:
    """A new state file is marked as ours, at the current schema version, in WAL mode."""
    async with SQLiteStore(path):
        pass
    with raw(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert dict(conn.execute("SELECT key, value FROM meta")) == {
            "application": "roomlio-notifier", "schema_version": str(schema.SCHEMA_VERSION)}


async def test_empty_file_is_initialised(path: str) -> None:
    """A zero-byte file (e.g. made by touch) becomes a state file."""
    write(path, b"")
    async with SQLiteStore(path) as store:
        assert await store.stats() == StoreStats(0, 0, 0)


async def test_foreign_sqlite_file_is_refused_and_untouched(path: str) -> None:
    """Another application's SQLite database is refused and left byte for byte as it was."""
    with raw(path) as conn:
        conn.execute("CREATE TABLE contacts (name TEXT)")
        conn.execute("INSERT INTO contacts VALUES ('Ann')")
    before = read(path)
    with pytest.raises(StoreError, match=f"{re.escape(path)} is an SQLite database but not"):
        await SQLiteStore(path, exclusive=True).open()
    assert read(path) == before


async def test_non_sqlite_file_is_refused_and_untouched(path: str) -> None:
    """A file of random bytes is refused with a message naming it, and not overwritten."""
    write(path, os.urandom(8192))
    before = read(path)
    with pytest.raises(StoreError, match=f"{re.escape(path)} is not an SQLite database; move"):
        await SQLiteStore(path).open()
    assert read(path) == before


async def test_corrupt_state_file_is_refused(path: str) -> None:
    """A state file whose pages were damaged is reported as corrupt, not reset."""
    async with SQLiteStore(path) as store:
        await store.commit(RoomState("general", cursor="c1"), deliveries(make_event(1)))
    write(path, b"\xff" * 3000, offset=100)
    with pytest.raises(StoreError, match=f"{re.escape(path)} is corrupt"):
        await SQLiteStore(path).open()


async def test_missing_directory_is_refused_clearly(tmp_path: Path) -> None:
    """A state path in a directory that does not exist says which directory is missing."""
    missing = tmp_path / "nope"
    with pytest.raises(StoreError, match=f"directory {re.escape(str(missing))} does not exist"):
        await SQLiteStore(str(missing / "state.db")).open()


async def test_newer_schema_version_is_refused(path: str) -> None:
    """A file written by a newer notifier is refused rather than misread."""
    async with SQLiteStore(path):
        pass
    with raw(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="written by a newer notifier"):
        await SQLiteStore(path).open()


async def test_older_schema_is_migrated_keeping_data(path: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a file at an older version runs the missing migrations and keeps the data."""
    async with SQLiteStore(path) as store:
        await store.commit(RoomState("general", cursor="c1"), [])
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, ("CREATE TABLE extra (x)",)])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    async with SQLiteStore(path) as store:
        assert await store.load_room("general") == RoomState("general", cursor="c1")
    with raw(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                            ).fetchone()[0] == str(schema.SCHEMA_VERSION)
        assert conn.execute("SELECT count(*) FROM extra").fetchone()[0] == 0


async def test_second_exclusive_opener_is_refused_until_the_first_closes(path: str) -> None:
    """Only one runner at a time: a second is told another notifier has the file."""
    async with SQLiteStore(path, exclusive=True):
        held = f"another notifier .* already running with state file {re.escape(path)}"
        with pytest.raises(StoreError, match=held):
            await SQLiteStore(path, exclusive=True).open()
    async with SQLiteStore(path, exclusive=True) as store:
        assert await store.stats() == StoreStats(0, 0, 0)


async def test_non_exclusive_opener_works_beside_the_runner(path: str) -> None:
    """An inspection command sees the runner's commits and leaves its claims alone."""
    async with SQLiteStore(path, exclusive=True) as runner:
        await runner.commit(RoomState("general", cursor="c1"), deliveries(make_event(1)))
        await runner.claim_due(later(), 1)
        async with SQLiteStore(path) as cli:
            assert await cli.stats() == StoreStats(outbox=2, dead_letters=0, rooms=1)
            assert len(await cli.claim_due(later(), 10)) == 1


async def test_exclusive_open_clears_claims_of_a_crashed_runner(path: str) -> None:
    """Claims left behind by a runner that is gone are returned to the outbox."""
    async with SQLiteStore(path, instance="crashed") as old:
        await old.commit(None, deliveries(make_event(1)))
        assert len(await old.claim_due(later(), 10)) == 2
    async with SQLiteStore(path, exclusive=True) as store:
        assert len(await store.claim_due(later(), 10)) == 2


async def test_closed_store_refuses_work_and_closes_twice(path: str) -> None:
    """Using a closed store is a StoreError; closing again is harmless; reopening works."""
    store = SQLiteStore(path, exclusive=True)
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="is not open"):
        await store.stats()
    await store.open()
    assert await store.stats() == StoreStats(0, 0, 0)
    await store.close()


async def test_open_store_picks_sqlite_for_paths_and_sqlite_urls(path: str) -> None:
    """Both a plain path and a sqlite:/// URL give an SQLite store on that file."""
    for url in (path, f"sqlite:///{path}"):
        store = open_store(url, exclusive=True)
        assert isinstance(store, SQLiteStore)
        assert (store.path, store.exclusive) == (path, True)


async def test_a_page_repeating_a_message_keeps_its_first_copy(store: SQLiteStore) -> None:
    """A page may hold one message version twice (same webhook-id); the first copy is the
    one stored and sent, once."""
    first = make_event(1)
    second = make_event(1, text="order #1 is late (a second copy, changed)")
    assert first.id == second.id and first != second
    one, two = (Delivery.for_webhook(e, "crm", RULES) for e in (first, second))
    assert await store.commit(None, [one, two]) == [one]
    claimed = await store.claim_due(later(), 10)
    assert [(d.id, d.event) for d in claimed] == [(one.id, first)]


async def test_a_replay_after_prune_brings_back_the_forgotten_event(store: SQLiteStore) -> None:
    """requeue (notifier replay) enqueues a delivery whose event the ledger has pruned, with
    the event's whole content."""
    event = make_event(1, detected_at=100.0)
    delivery = Delivery.for_webhook(event, "crm", RULES)
    await store.commit(None, [delivery])
    await store.delivered([delivery.id])
    assert await store.prune(older_than=500.0) == 1
    assert await store.requeue([delivery], time.time()) == 1
    claimed = await store.claim_due(later(), 10)
    assert [(d.id, d.event) for d in claimed] == [(delivery.id, event)]


def test_claimed_rows_are_built_only_for_records_as_they_were_written() -> None:
    """decode_deliveries sets Event's and Delivery's slots without their __init__: a
    field added, renamed or moved, or a __post_init__, stops the import instead of
    building records that skip it."""

    @dataclass(frozen=True, slots=True)
    class Record:
        a: int
        b: int

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            raise AssertionError("never called here")

    record = object.__new__(Record)
    for setter, value in zip(rows._setters(Record, ("a", "b")), (1, 2), strict=True):
        setter(record, value)
    assert record == Record(1, 2)
    for cls, names in ((Record, ("b", "a")), (Record, ("a",)), (Checked, ("a",))):
        with pytest.raises(TypeError, match=r"update notifier\.store\.rows\._setters"):
            rows._setters(cls, names)
