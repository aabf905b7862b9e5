"""Rooms spread over their intervals, and edit scans that stand for polls (issue 17)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from notifier.config import Config, RoomlioSettings
from notifier.polling.policy import edit_scan_due, next_interval, phase, slot_delay
from notifier.polling.scheduler import RoomTurn, budget_note, first_poll_delay
from notifier.runtime.service import Service, ServiceHooks
from notifier.server.metrics import Metrics
from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.conftest import running

NAMES = [f"room-{i}" for i in range(10_000)]


def _settings(**overrides: object) -> RoomlioSettings:
    base: dict[str, object] = {"base_url": "http://127.0.0.1:1/rpc", "api_key": "k" * 16}
    return RoomlioSettings(**{**base, **overrides})  # type: ignore[arg-type]


def test_a_rooms_place_is_the_same_in_another_process() -> None:
    """A room's place within its interval comes from its name alone: a fresh process (with
    another string-hash seed) computes the same places, so a restart keeps them."""
    names = [*NAMES[:50], "rm_bvr0h6tnf4q1u52mfit0", "Kundenservice Zürich"]
    code = ("import json, sys; from notifier.polling.policy import phase; "
            "print(json.dumps([phase(n) for n in json.load(sys.stdin)]))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(names), text=True,
                         capture_output=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert json.loads(out) == [phase(n) for n in names]


@pytest.mark.parametrize("interval", [0.1, 5.0, 60.0, 7.3])
def test_every_poll_of_a_room_falls_on_its_own_place(interval: float) -> None:
    """Whenever a poll ends, the next falls at phase × interval past a multiple of the
    interval (Unix time), within (0, interval] of now: never later than the interval."""
    rng = random.Random(3)
    for name in NAMES[:200]:
        now = 1_790_000_000 + rng.uniform(0, 1000)
        wait = slot_delay(name, interval, now)
        assert 0 < wait <= interval + 1e-9
        place = (now + wait) % interval
        expected = phase(name) * interval
        assert min(abs(place - expected), interval - abs(place - expected)) < 1e-5


def test_places_spread_evenly_over_the_interval() -> None:
    """10,000 rooms' places, in 20 bins of the interval: each bin within ±20% of 500 (4.6
    standard deviations of a uniform draw)."""
    bins = Counter(int(phase(name) * 20) for name in NAMES)
    assert len(bins) == 20
    assert all(400 <= count <= 600 for count in bins.values()), bins


def test_rooms_starting_together_spread_their_first_polls_to_fit_the_budget() -> None:
    """1,000 rooms with a budget of 100/s: the first polls are spread over 20 s (half the
    budget), evenly; without a budget over poll_interval."""
    capped = _settings(max_requests_per_second=100)
    delays = [first_poll_delay(name, capped, 1000) for name in NAMES[:1000]]
    assert max(delays) <= 20.0 and max(delays) > 19.0
    per_second = Counter(int(d) for d in delays)
    assert max(per_second.values()) <= 50 * 1.5, per_second
    free = [first_poll_delay(name, _settings(), 1000) for name in NAMES[:1000]]
    assert max(free) <= 5.0 and min(free) < 0.1


def test_a_budget_too_small_for_the_rooms_says_how_late_they_are_polled() -> None:
    """50 requests/s cannot poll 6,000 rooms once a minute: the note says every 120 s."""
    note = budget_note(_settings(max_requests_per_second=50), 6000)
    assert "cannot poll 6000 rooms" in note and "every 120s" in note
    assert budget_note(_settings(max_requests_per_second=100), 6000) == ""
    assert budget_note(_settings(), 6000) == ""


def _scan_gaps(scan: float, poll: float, ceiling: float, seed: int) -> float:
    """The longest time between two edit scans of one room polled by the service's rules:
    news at random, polls on the room's places, each a little late (noise)."""
    rng = random.Random(seed)
    name = f"room-{seed}"
    now = 1_790_000_000.0
    interval, quiet, next_scan, last_scan, longest = poll, 0, now + scan, now, 0.0
    for _ in range(3000):
        if edit_scan_due(now, next_scan, interval):
            longest = max(longest, now - last_scan)
            last_scan, next_scan = now, now + scan
        quiet = 0 if rng.random() < 0.2 else quiet + 1
        interval = next_interval(interval, quiet, poll, ceiling)
        now += slot_delay(name, interval, now) + rng.uniform(0, 0.02 * poll)
    return longest


@pytest.mark.parametrize(("scan", "poll", "ceiling"), [
    (60.0, 5.0, 60.0), (60.0, 60.0, 60.0), (30.0, 5.0, 60.0), (300.0, 5.0, 60.0),
    (10.0, 5.0, 60.0), (60.0, 2.0, 30.0)])
def test_edit_scans_come_within_the_documented_bound(scan: float, poll: float,
                                                     ceiling: float) -> None:
    """Scans ride on polls; each comes at most edit_scan_interval + ¾ max_poll_interval
    after the one before (or max_poll_interval, when longer: a poll each), however the
    room's pace changes, so an edit is seen within that."""
    bound = max(ceiling, scan + 0.75 * ceiling) + 0.02 * poll
    worst = max(_scan_gaps(scan, poll, ceiling, seed) for seed in range(5))
    assert worst <= bound, (worst, bound)


def test_a_quiet_room_scans_at_every_poll_when_the_intervals_agree() -> None:
    """At the defaults a quiet room's every poll is an edit scan: one request a minute."""
    now, next_scan = 1_790_000_000.0, 1_790_000_060.0
    for _ in range(100):
        now += slot_delay("quiet", 60.0, now) + random.uniform(0, 0.5)
        assert edit_scan_due(now, next_scan, 60.0)
        next_scan = now + 60.0


# -- the service ---------------------------------------------------------------------------


async def _reads(config: Config, until: Callable[[list[tuple[str, str]]], bool],
                 act: Callable[[list[tuple[str, str]]], None] | None = None
                 ) -> list[tuple[str, str]]:
    """Run the service until ``until(reads)``; ``act`` is called on every read."""
    reads: list[tuple[str, str]] = []
    changed = asyncio.Event()

    def on_read(room: str, kind: str, _requests: int) -> None:
        reads.append((room, kind))
        if act is not None:
            act(reads)
        changed.set()

    service = Service(config, hooks=ServiceHooks(on_read=on_read))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(20):
            while not until(reads):
                changed.clear()
                await changed.wait()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return reads


async def test_an_edit_scan_stands_for_the_poll_of_a_quiet_room(
        make_config: Callable[..., Config], emulator: RoomlioEmulator,
        receiver: WebhookReceiver) -> None:
    """A quiet room with a message in the edit window, polled and scanned at the same
    pace: once it has been read, each turn is one edit scan and no cursor poll; a new
    message is still read (by the poll that follows a scan that saw it) and delivered."""
    emulator.add_room(key="q")
    emulator.post("q", "hello")
    config = make_config(rooms=["q"], roomlio={"poll_interval": "50ms",
                                               "max_poll_interval": "50ms",
                                               "edit_scan_interval": "50ms"})
    posted: list[bool] = []

    def post_once(reads: list[tuple[str, str]]) -> None:
        if len(reads) >= 12 and not posted:
            emulator.post("q", "refund please")
            posted.append(True)

    reads = await _reads(config, lambda r: len(receiver.received) >= 1 and len(r) >= 14,
                         post_once)
    kinds = [kind for _, kind in reads]
    first_scan = kinds.index("edit_scan")
    steady = kinds[first_scan:12]
    assert len(steady) >= 6 and set(steady) == {"edit_scan"}, kinds
    assert "poll" in kinds[12:], kinds  # the scan saw the new message: the poll read it
    since = [r for r in emulator.requests if "since" in r.params]
    assert len(since) >= len(steady)


async def test_a_room_whose_messages_are_older_than_the_window_is_not_scanned(
        make_config: Callable[..., Config], emulator: RoomlioEmulator,
        receiver: WebhookReceiver) -> None:
    """Nothing in the edit window can change when the room's newest message is older
    than it: the room costs its polls only, no scan is sent."""
    emulator.add_room(key="old")
    emulator.post("old", "hello", created_at=datetime.now(UTC) - timedelta(hours=2))
    config = make_config(rooms=["old"], roomlio={"poll_interval": "30ms",
                                                 "max_poll_interval": "30ms",
                                                 "edit_scan_interval": "30ms",
                                                 "edit_lookback": "1h"})
    reads = await _reads(config, lambda r: len(r) >= 10)
    assert {kind for _, kind in reads} == {"poll"}, reads
    assert not [r for r in emulator.requests if "since" in r.params]


async def test_each_poll_is_planned_for_the_rooms_place_before_and_after_a_restart(
        make_config: Callable[..., Config], emulator: RoomlioEmulator,
        receiver: WebhookReceiver) -> None:
    """Every pause the service plans after a poll ends on the room's place within its
    interval (phase × interval past a multiple of it), in two runs on the same store."""
    emulator.add_room(key="p")
    config = make_config(rooms=["p"], roomlio={"poll_interval": "40ms", "edit_lookback": 0,
                                               "max_poll_interval": "40ms"})
    places: list[float] = []
    planned_more = asyncio.Event()
    for _run in range(2):
        service = Service(config)
        step = service._step

        async def planned(turn: RoomTurn, step: Callable = step) -> float | None:
            delay = await step(turn)
            if delay is not None and not turn.failures:
                places.append((time.time() + delay) % 0.04)
                planned_more.set()
            return delay

        service._step = planned  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        count = len(places)
        async with asyncio.timeout(20):
            while len(places) < count + 5:
                planned_more.clear()
                await planned_more.wait()
        stop.set()
        await asyncio.wait_for(task, 30)
    expected = phase("p") * 0.04
    assert all(min(abs(p - expected), 0.04 - abs(p - expected)) < 0.002 for p in places), (
        places, expected)


def test_metrics_split_requests_into_polls_and_edit_scans() -> None:
    """notifier_room_requests_total counts RoomHistory requests by kind."""
    metrics = Metrics(["a"], [])
    metrics.on_read("a", "poll", 1)
    metrics.on_read("a", "edit_scan", 3)
    sample = {s.labels["kind"]: s.value for s in metrics.reads.collect()[0].samples
              if s.name.endswith("_total")}
    assert sample == {"poll": 1.0, "edit_scan": 3.0}


async def test_a_budget_too_small_is_logged_and_shown_by_the_running_service(
        make_config: Callable[..., Config], emulator: RoomlioEmulator,
        receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    """3 rooms, max_poll_interval 1s, 1 request/s: a WARNING at start, and the note the
    status page shows."""
    for room in ("a", "b", "c"):
        emulator.add_room(key=room)
    config = make_config(rooms=["a", "b", "c"], roomlio={
        "max_poll_interval": "1s", "max_requests_per_second": 1, "edit_lookback": 0})
    async with running(config) as service:
        await emulator.wait_requests(1, timeout=10)
        note = service.polling_note
    assert "cannot poll 3 rooms" in note and "every 3s" in note
    assert [r for r in caplog.records if r.levelname == "WARNING" and note in r.getMessage()]
