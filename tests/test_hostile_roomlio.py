"""A hostile or buggy Roomlio: absurd timestamps, cursors that loop, errors that echo the
key or forge log lines. Each costs at most its own room a poll, never the process, never
the other rooms, never a secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.polling.tailer import Tailer
from notifier.runtime.service import ServiceHooks
from notifier.store import RoomState, open_store
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from notifier.util.time import parse_time
from tests.chaos import LogWatch, assert_no_secrets, serve, write_config
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command
from tests.opsutil import ops_config, serving, until

pytestmark = pytest.mark.chaos


def page(*messages: dict[str, Any], has_more: bool = False, cursor: str = "") -> dict[str, Any]:
    """A RoomHistory answer holding ``messages``."""
    return {"messages": list(messages), "hasMore": has_more, "nextCursor": cursor}


def message(i: int, body: str, created: str = "2026-11-25T10:00:00Z",
            **extra: Any) -> dict[str, Any]:
    """A complete Roomlio message with a crafted id and createdAt."""
    return {"id": f"msg_crafted{i:04d}", "userID": "usr_x", "username": "", "first": "",
            "last": "", "visibility": "", "roomName": "", "userType": "member",
            "messageType": "user", "body": body, "links": [], "roomID": "rm_x",
            "createdAt": created, "editedAt": "0001-01-01T00:00:00Z", **extra}


# -- item 2: a bad field never escapes as an exception -------------------------------------


@pytest.mark.parametrize("text", [
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z", "", " ", "yesterday", "2026-13-01T00:00:00Z", "\x00", "٢٠٢٦-01-01",
    "2026-01-01T00:00:00+25:00", "9" * 10_000, "2026-01-01T00:00:00.1234567890123Z",
])
def test_parse_time_returns_a_time_or_none_for_any_text(text):
    """Out-of-range offsets, garbage and huge strings give a value or None, never an error."""
    when = parse_time(text)
    assert when is None or when.tzinfo is not None


def test_parse_time_clamps_a_moment_past_the_calendar_to_its_end():
    """Year 9999 at -01:00 is after datetime.max in UTC: it reads as the last moment."""
    assert parse_time("9999-12-31T23:59:59-01:00") == datetime.max.replace(tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00+01:00") == datetime.min.replace(tzinfo=UTC)


@given(st.one_of(st.text(), st.none(), st.integers(), st.floats(), st.lists(st.text())))
def test_parse_time_never_raises(value):
    """Whatever a remote field holds, parse_time answers."""
    parse_time(value)


async def _post_until_delivered(rx: WebhookReceiver, emu: RoomlioEmulator, room: str,
                                body: str, timeout: float) -> float:
    """Post ``body`` in ``room``; seconds until the receiver has it."""
    start = time.monotonic()
    emu.post(room, body)
    await rx.wait_for(lambda r: any(x.json["data"]["message"]["body"] == body
                                    for x in r.received), timeout=timeout)
    return time.monotonic() - start


async def test_notifier_run_keeps_serving_healthy_rooms_beside_a_year_9999_message(tmp_path):
    """`notifier run`: a createdAt past the calendar in one room (it crashed the process,
    exit 1, on every restart) costs nothing; the healthy rooms' events arrive on time."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in ("poisoned", "h1", "h2"):
            emu.add_room(key=room)
        poison = message(1, "refund from the edge of time", "9999-12-31T23:59:59-01:00")
        emu.inject(Fault.status(200, body=page(poison)), room="poisoned", times=100_000)
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["poisoned", "h1", "h2"]))
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path)), stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, **TEST_ENV})
        try:
            await emu.wait_for(lambda e: sum(r.room == "poisoned" and r.done
                                             for r in e.requests) >= 3, timeout=20)
            delays = [await _post_until_delivered(rx, emu, room, f"refund {room} {i}", 10)
                      for i in range(3) for room in ("h1", "h2")]
            assert proc.returncode is None, "the process stopped"
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert max(delays) < 3.0, delays
    assert "Traceback" not in err.decode()


async def test_an_unexpected_error_in_one_rooms_poll_is_that_rooms_failure(tmp_path, monkeypatch):
    """A bug that raises while polling one room (not a Roomlio or store error): the room is
    logged as failing, backs off and is tried again; the process and other rooms go on."""
    real_poll = Tailer.poll
    calls: list[str] = []

    async def buggy_poll(self: Tailer) -> int:
        calls.append(self.room.name)
        if self.room.name == "broken":
            raise ZeroDivisionError("a bug in one room's poll")
        return await real_poll(self)

    monkeypatch.setattr(Tailer, "poll", buggy_poll)
    failed: list[str] = []
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="broken")
        emu.add_room(key="fine")
        config = write_config(tmp_path, emu.url, rx.url, rooms=["broken", "fine"],
                              roomlio={"poll_interval": "50ms"})
        hooks = ServiceHooks(on_poll_failed=lambda room, exc: failed.append(room))
        with LogWatch() as logs:
            async with serve(config, hooks=hooks) as run:
                await run.until(logs.wait_for(lambda w: calls.count("broken") >= 2))
                emu.post("fine", "refund please")
                await run.until(rx.wait_count(1, timeout=10))
    assert failed.count("broken") >= 2 and "fine" not in failed
    line = next(r for r in logs.records if "ZeroDivisionError" in r.getMessage())
    assert line.levelno == logging.ERROR and "room broken" in line.getMessage()
    assert "next try in" in line.getMessage()


# -- item 8 (Roomlio side) and 10: remote error text ------------------------------------------


FORGED = "\n2026-11-30 10:00:00,000 ERROR   notifier: FORGED"


@pytest.mark.parametrize(("text", "shows"), [
    ("x" * 185 + API_KEY + " and more", "[roomlio.api_ke"),  # the marker, cut after redaction
    ("x" * 100 + API_KEY + FORGED, "[roomlio.api_key]\\n2026-11-30"),
    ("bad cursor" + FORGED + "\r\x1b[2K\u2028\ud800", "\\n2026-11-30"),
], ids=["key past the cut", "key and a newline", "control characters"])
async def test_remote_error_text_is_redacted_then_escaped_then_cut(
        emulator, receiver, tmp_path, caplog, text, shows):
    """An error message that repeats the API key from character 185 on (it was cut at 200
    before redaction: half the key in the logs and on /api/status), or holds a newline and a
    fake log line: in the logs and on /api/status, redacted first, then escaped and cut."""
    caplog.set_level(logging.DEBUG)
    emulator.add_room(key="r1")
    emulator.inject(Fault.status(500, body={"code": "internal", "message": text}), room="r1",
                    times=4)  # every attempt of one poll: the poll fails and is logged
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"])
    async with serving(config) as s:
        await until(lambda: s.ops.board.rooms["r1"].errors >= 1)
        _, body = await s.get("/api/status")
    last_error = json.loads(body)["rooms"][0]["last_error"]
    logged = [r.getMessage() for r in caplog.records if "HTTP 500" in r.getMessage()]
    assert logged, caplog.text
    for shown_text in [last_error, *logged]:
        assert API_KEY[:12] not in shown_text, shown_text  # not even the first half
        assert shows in shown_text, shown_text
        for raw in ("\n", "\r", "\x1b", "\u2028", "\ud800"):
            assert raw not in shown_text
    assert_no_secrets(caplog.text, "the logs")


# -- item 4: a cursor that loops ----------------------------------------------------------------


def an_hour_ago() -> str:
    """A start_from that sets the resume point (so edit scans run) before any message."""
    return (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("fresh", "warned", "scans"), [
    (False, "repeats within one poll", False),
    (True, "still more after 5 pages", False),
    (False, "edit scan: nextCursor", True),
    (True, "edit scan: still more after 5 pages", True),
], ids=["two cursors in a cycle", "endless fresh", "edit scan, cycle", "edit scan, fresh"])
async def test_a_looping_cursor_ends_the_poll_with_a_warning_and_costs_few_requests(
        tmp_path, fresh, warned, scans):
    """hasMore with a nextCursor cycling between two values (or new every time) made
    ~1,000 requests/s for one room and its poll never ended: now the poll ends at a repeated
    cursor or at max_pages_per_poll, says so once, and the room is polled at its pace."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="looping")
        emu.add_room(key="healthy")
        emu.inject(Fault.cursor_loop(fresh=fresh), room="looping", times=100_000)
        config = write_config(tmp_path, emu.url, rx.url, rooms=["looping", "healthy"],
                              roomlio={"max_pages_per_poll": 5, "poll_interval": "100ms",
                                       "max_poll_interval": "100ms", "start_from": an_hour_ago(),
                                       # the window reaches back past start_from: a
                                       # room with nothing processed in it is not scanned
                                       "edit_lookback": "2h" if scans else 0,
                                       "edit_scan_interval": "100ms"})
        with LogWatch() as logs:
            async with serve(config) as run:
                start = time.monotonic()
                delays = [await _post_until_delivered(rx, emu, "healthy", f"refund {i}", 5)
                          for i in range(4)]
                await run.until(logs.wait_for(lambda w: w.count(warned) >= 3, timeout=10))
                elapsed = time.monotonic() - start
                asked = sum(r.room == "looping" and r.time >= start for r in emu.requests)
                polls = logs.count(warned)
    # at most 10 polls a second (poll_interval 100ms), each of at most 5 pages, and as many
    # edit scans
    assert asked <= 2 * 5 * 10 * elapsed + 10, (asked, elapsed)
    assert polls <= 10 * elapsed + 2
    warning = next(r for r in logs.records if warned in r.getMessage())
    assert warning.levelno == logging.WARNING and "room looping" in warning.getMessage()
    assert max(delays) < 2.0, delays


# -- item 5: a timestamp from the future ----------------------------------------------------------


async def test_a_message_from_year_9999_does_not_move_the_resume_point(tmp_path):
    """A valid createdAt far ahead of the clock is delivered, but a lost cursor (400) then
    resumes from the last real time: against an API that filters by ``since`` the room
    went silent for good when the resume point was year 9999."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="r1")
        emu.post("r1", "refund before")
        # no edit scans: the injected page is for the next poll, and a due scan goes first
        config = write_config(tmp_path, emu.url, rx.url, rooms=["r1"],
                              roomlio={"edit_lookback": 0})
        future = message(1, "refund from the future", "9999-12-31T23:59:59Z")
        with LogWatch() as logs:
            async with serve(config) as run:
                await run.until(rx.wait_count(1, timeout=10))
                # its id is unknown to the emulator: the next request with it is a 400
                emu.inject(Fault.status(200, body=page(future)), room="r1")
                await run.until(rx.wait_count(2, timeout=10))
                await run.until(emu.wait_for(lambda e: any(r.status == 400
                                                           for r in e.requests)))
                for i in range(3):
                    await run.until(_post_until_delivered(rx, emu, "r1", f"refund after {i}",
                                                          10))
        since = [r.params["since"] for r in emu.requests if "since" in r.params]
    assert since and all(not s.startswith("9999") for s in since), since
    assert logs.count("dated ahead of this host's clock") == 1


async def test_a_resume_point_saved_in_the_future_is_pulled_back(tmp_path):
    """A state file whose resume point an older version set to year 9999: on a lost cursor
    the tail resumes from a recent time instead, and new messages arrive."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="r1")
        config = write_config(tmp_path, emu.url, rx.url, rooms=["r1"])
        store = open_store(config.state)
        async with store:
            await store.commit(RoomState("r1", cursor="msg_gone", last_id="msg_gone",
                                         high_water="9999-12-31T23:59:59Z"), [])
        emu.post("r1", "refund after the upgrade")
        with LogWatch() as logs:
            async with serve(config) as run:
                await run.until(rx.wait_count(1, timeout=10))
    assert logs.count("ahead of this host's clock") >= 1


@pytest.mark.parametrize("fresh", [False, True], ids=["cycle", "fresh"])
@pytest.mark.parametrize("reader", ["replay", "backtest"])
async def test_replay_and_backtest_end_when_the_cursor_cycles(tmp_path, reader, fresh):
    """`notifier replay` and `backtest` read history by cursor too: a nextCursor that comes
    back, or MAX_IDLE_PAGES fresh ones in a row that bring nothing, ends their reading
    (replay: done; backtest: an error saying so) instead of looping."""
    import aiohttp

    from notifier.cli import replay
    from notifier.errors import RoomlioTransientError
    from notifier.polling import backtest
    from notifier.polling.client import MAX_IDLE_PAGES, RoomlioClient

    async with RoomlioEmulator(api_key=API_KEY) as emu, WebhookReceiver() as rx:
        emu.add_room(key="r1")
        emu.post("r1", "refund before the loop")
        emu.inject(Fault.cursor_loop(fresh=fresh), room="r1", times=100_000)
        config = write_config(tmp_path, emu.url, rx.url, rooms=["r1"])
        async with aiohttp.ClientSession() as session, asyncio.timeout(10):
            client = RoomlioClient(config.roomlio, session)
            room, since = config.rooms[0], "2020-01-01T00:00:00Z"
            if reader == "replay":
                got = [m async for m in replay.history(client, room, since, 50)]
                assert got == []
            else:
                with pytest.raises(RoomlioTransientError,
                                   match="nothing new" if fresh else "one it gave before"):
                    _ = [m async for m in backtest.history(client, room, since=since,
                                                           page_size=50)]
        assert len(emu.requests) <= (MAX_IDLE_PAGES if fresh else 3)


# -- all of them at once, in a real process -------------------------------------------------------


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_notifier_run_under_every_hostile_roomlio_input_at_once(tmp_path):
    """`notifier run` with one room each: a createdAt past the calendar, a poisoned message,
    a looping cursor, a message from year 9999; the healthy rooms' events arrive within
    seconds, the process keeps running in bounded memory, the poison is in quarantine."""
    hostile = {
        "poisoned": (Fault.status(200, body=page(message(
            1, "refund", "9999-12-31T23:59:59-01:00"))), 100_000),
        "quarantine": (Fault.status(200, body=page(message(2, "refund ok"), message(
            3, "refund bad", "yesterday"), message(4, "refund ok too"))), 100_000),
        "looping": (Fault.cursor_loop(), 100_000),
        "future": (Fault.status(200, body=page(message(5, "refund", "9999-01-01T00:00:00Z"))),
                   1),
    }
    healthy = ["h1", "h2", "h3"]
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room, (fault, times) in hostile.items():
            emu.add_room(key=room)
            emu.inject(fault, room=room, times=times)
        for room in healthy:
            emu.add_room(key=room)
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=[*hostile, *healthy]))
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path)), stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, **TEST_ENV})
        try:
            await emu.wait_for(lambda e: all(
                sum(r.room == room and r.done for r in e.requests) >= 3 for room in hostile),
                timeout=20)
            delays = [await _post_until_delivered(rx, emu, room, f"refund {room} {i}", 10)
                      for i in range(3) for room in healthy]
            rss = _rss_mb(proc.pid)
            assert proc.returncode is None, "the process stopped"
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
    log = err.decode()
    assert proc.returncode == 0, log[-3000:]
    assert max(delays) < 3.0, delays
    assert rss < 300, rss
    assert "Traceback" not in log and "repeats within one poll" in log
    store = open_store(str(tmp_path / "state.db"))
    async with store:
        kept = await store.quarantined()
    assert [(q.room, q.message_id) for q in kept] == [("quarantine", "msg_crafted0003")]
