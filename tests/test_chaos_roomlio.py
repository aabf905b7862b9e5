"""Roomlio misbehaving at random, over many rooms, under both cursor readings: lose nothing.

Every fault the emulator can produce is mixed in at random while messages are posted and
edited; one room is deleted half-way. The run ends with its figures and the promise:
nothing lost, no event for a message that matches no rule, duplicates only under one
webhook-id, the other rooms served throughout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable

import pytest

from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.chaos import (
    PATIENT,
    Traffic,
    assert_no_secrets,
    chaos_seed,
    deliveries_complete,
    each_fault_once,
    measure,
    rounds,
    serve,
    write_config,
)
from tests.conftest import API_KEY, SECRET

pytestmark = pytest.mark.chaos

REQUEST_TIMEOUT = 0.3
#: A quiet room's longest pause where a test waits for a number of polls: the back-off
#: still doubles from poll_interval, but stops here, not at the default minute.
QUIET_CEILING = "800ms"
#: Seconds within which every version must arrive, short and soak; RELIABILITY.md
#: measured at most 4.1 s and 14.4 s (9 s and 17 s on a loaded machine).
MAX_DELAY, MAX_DELAY_SOAK = 30.0, 60.0

#: name -> a fault to inject (some are drawn with random parameters)
FAULTS: dict[str, Callable[[random.Random], Fault]] = {
    "429": lambda rng: Fault.status(429),
    "429 Retry-After": lambda rng: Fault.status(429, retry_after=rng.choice([0, 0.1, 0.3])),
    "500": lambda rng: Fault.status(500),
    "502": lambda rng: Fault.status(502),
    "503 Retry-After": lambda rng: Fault.status(503, retry_after=0.2),
    "timeout": lambda rng: Fault.delay(REQUEST_TIMEOUT + 0.3),
    "connection reset": lambda rng: Fault.RESET,
    "truncated JSON": lambda rng: Fault.TRUNCATED,
    "connection cut mid-body": lambda rng: Fault.truncated(cut_connection=True),
    "message without id": lambda rng: Fault.malformed("missing_id"),
    "message with a wrong type": lambda rng: Fault.malformed("wrong_type"),
    "messages not a list": lambda rng: Fault.malformed("messages_not_list"),
    "answer not an object": lambda rng: Fault.malformed("not_object"),
    "hasMore with empty nextCursor": lambda rng: Fault.HAS_MORE_EMPTY_CURSOR,
    "duplicates": lambda rng: Fault.DUPLICATE,
    "duplicates out of order": lambda rng: Fault.duplicate(shuffle=True),
    "out of order": lambda rng: Fault.REORDER,
    "overlapping page": lambda rng: Fault.overlap(rng.randint(1, 4)),
    "unknown cursor (400)": lambda rng: Fault.status(
        400, body={"code": "invalid_cursor", "message": "unknown cursor"}),
}


@pytest.mark.parametrize(("cursor_mode", "empty_cursor_at_end"), [
    ("inclusive", True), ("inclusive", False), ("exclusive", True), ("exclusive", False)])
async def test_random_roomlio_faults_over_many_rooms_lose_nothing(
        tmp_path, caplog, long_run, cursor_mode, empty_cursor_at_end):
    """Random API faults, a deleted room and edits: every matching version arrives once."""
    caplog.set_level(logging.DEBUG)
    seed = chaos_seed()
    rng = random.Random(seed)
    rooms = [f"room{i}" for i in range(16 if long_run else 6)]
    async with RoomlioEmulator(api_key=API_KEY, cursor_mode=cursor_mode,
                               empty_cursor_at_end=empty_cursor_at_end) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        traffic = Traffic(emu, rooms, rng)
        traffic.step(10)  # a backlog to page through at start
        config = write_config(tmp_path, emu.url, rx.url, rooms=rooms, roomlio={
            "page_size": 3, "request_timeout": f"{REQUEST_TIMEOUT}s",
            "poll_interval": "100ms", "edit_scan_interval": "200ms"},
            delivery={**PATIENT})
        doomed = rooms[-1]
        injected = each_fault_once(FAULTS, emu.inject, rng)
        forced, random_uses, random_rounds = sum(injected.values()), 0, 0
        async with serve(config) as run:
            for i in rounds(long_run, 24, 300):
                traffic.step(rng.randint(1, 4))
                # one fault every round, so the random phase's count is set by the rounds,
                # not by the draw; never for the doomed room, whose polls back off long
                name = rng.choice(list(FAULTS))
                times = rng.randint(1, 2)
                emu.inject(FAULTS[name](rng), times=times, room=rng.choice(
                    [None, *(r for r in traffic.live_rooms if r != doomed)]))
                injected[name] += 1
                random_uses, random_rounds = random_uses + times, random_rounds + 1
                if i == 12:
                    traffic.delete_room(doomed)
                    deleted_at = time.monotonic()
                await asyncio.sleep(rng.uniform(0.02, 0.1))  # the pace of the chat
            # every fault queued is served (the forced ones first: they head the queue)
            await run.until(emu.wait_for(lambda e: e.pending_faults == 0, timeout=30))
            await deliveries_complete(run, traffic, rx)
            # a few more polls of every room: a late, wrong event would show up now
            await run.until(emu.wait_requests(len(emu.requests) + 3 * len(rooms), timeout=30))
    consumed = Counter(r.fault for r in emu.requests if r.fault)
    random_served = sum(consumed.values()) - forced
    after = [v for v in traffic.current.values()
             if v.born > deleted_at and v.room != doomed and v.kind != "chat"]
    figures = measure(f"roomlio chaos {cursor_mode}, empty cursor at end {empty_cursor_at_end}, "
                      f"seed {seed}", traffic, rx, rooms=len(rooms),
                      messages=len(traffic.current), versions=len(traffic.versions),
                      faults_injected=sum(injected.values()), forced_faults=forced,
                      random_faults_served=random_served, requests=len(emu.requests))
    # and no duplicate: Roomlio faults alone cannot repeat a delivery
    figures.check(max_delay=MAX_DELAY_SOAK if long_run else MAX_DELAY)
    assert random_served == random_uses >= random_rounds, "the random phase's faults did not happen"
    assert any(r.status == 404 for r in emu.requests if r.room == doomed)
    assert after, "no traffic after the room was deleted"  # and all of it arrived (check)
    assert_no_secrets(caplog.text, "the logs")


async def test_a_room_that_keeps_timing_out_does_not_hold_up_the_others(tmp_path, caplog):
    """Requests for one room time out every time; the others keep delivering promptly."""
    caplog.set_level(logging.DEBUG)
    rng = random.Random()
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in ("stuck", "a", "b"):
            emu.add_room(key=room)
        emu.inject(Fault.delay(REQUEST_TIMEOUT + 5), room="stuck", times=10_000)
        traffic = Traffic(emu, ["a", "b"], rng)
        config = write_config(tmp_path, emu.url, rx.url, rooms=["stuck", "a", "b"],
                              roomlio={"request_timeout": f"{REQUEST_TIMEOUT}s"})
        emu.post("stuck", "refund from the stuck room")
        async with serve(config) as run:
            def stuck(e: RoomlioEmulator) -> list:
                return [r for r in e.requests if r.room == "stuck" and r.done]

            while len(stuck(emu)) < 4:  # the stuck room is retried all along
                traffic.step(2)
                await run.until(rx.wait_for(lambda r: not traffic.missing(r), timeout=5))
            await deliveries_complete(run, traffic, rx, timeout=20)
            timed_out = stuck(emu)
    figures = measure("one room always timing out", traffic, rx,
                      stuck_room_requests=len(timed_out))
    figures.check()
    assert figures.max_delay < 5, "a stuck room held up the others"
    assert all(r.status is None for r in timed_out)
    assert "no answer within 0.3s" in caplog.text
    assert_no_secrets(caplog.text, "the logs")


@pytest.mark.parametrize("cursor_mode", ["inclusive", "exclusive"])
async def test_an_edit_of_the_newest_message_is_an_edit_under_either_cursor_reading(
        receiver, tmp_path, cursor_mode):
    """Re-reading the cursor's own message (inclusive reading) must not turn its edit into
    a second message.created: rules for edits see it, rules for new messages do not."""
    rules = [{"name": "new", "keywords": ["refund"], "events": ["created"], "notify": ["crm"]},
             {"name": "edits", "keywords": ["refund"], "events": ["edited"], "notify": ["mod"]}]
    async with RoomlioEmulator(api_key=API_KEY, cursor_mode=cursor_mode) as emu:
        emu.add_room(key="r1")
        first = emu.post("r1", "refund please")
        # the quiet back-off capped, so the six polls below come within seconds
        config = write_config(tmp_path, emu.url, receiver.url, rooms=["r1"], rules=rules,
                              roomlio={"max_poll_interval": QUIET_CEILING})
        async with serve(config) as run:
            await run.until(receiver.wait_count(1))
            edited = emu.edit(first["id"], "refund please, it is urgent")
            await run.until(receiver.wait_for(
                lambda r: any(x.path == "/mod" for x in r.received), timeout=10))
            await run.until(emu.wait_requests(len(emu.requests) + 6))  # polls re-reading it
    got = sorted((r.path, r.json["type"], r.json["data"]["message"]["editedAt"])
                 for r in receiver.received)
    assert got == [("/crm", "message.created", first["editedAt"]),
                   ("/mod", "message.edited", edited["editedAt"])]
