"""The status page's history: one-minute rings that roll over, a p95 sketch, bounded memory."""

from __future__ import annotations

import json
import math
import random

import pytest

from notifier.delivery.sender import AttemptReport, DeliveryOutcome
from notifier.errors import RoomlioError
from notifier.events import Delivery, Event
from notifier.server import app as app_module
from notifier.server.history import (
    CHART_ROOMS,
    GAMMA,
    MINUTES,
    ROOM_LIMIT,
    WEBHOOK_LIMIT,
    History,
    Ring,
    RoomMinute,
    Sketch,
)
from notifier.testing import Fault
from tests.conftest import Outcomes
from tests.opsutil import ops_config, serving, until

#: The sketch's promise: a quantile within this relative error of the exact one.
TOLERANCE = (GAMMA - 1) / (GAMMA + 1) + 1e-9


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def delivery(webhook: str = "crm", detected_at: float = 0.0) -> Delivery:
    event = Event("evt_1", "message.created", "r1", {"id": "msg_1"}, ("refunds",), detected_at)
    return Delivery.for_webhook(event, webhook, ("refunds",))


def exact_p95(values: list[float]) -> float:
    return sorted(values)[math.ceil(0.95 * len(values)) - 1]


def test_a_ring_keeps_each_minute_in_its_own_bucket_oldest_first():
    """Counts land in their minute; the window lists 60 minutes ending with the current one."""
    ring = Ring(RoomMinute)
    start = 60.0 * 1000  # a minute boundary
    for minute, polls in ((0, 1), (5, 2), (59, 3)):
        for _ in range(polls):
            bucket = ring.at(start + minute * 60 + 30)
            assert bucket is not None
            bucket.polls += 1
    window = ring.window(start + 59 * 60 + 59.9)
    assert len(window) == MINUTES
    assert [(i, b.polls) for i, b in enumerate(window) if b] == [(0, 1), (5, 2), (59, 3)]


def test_a_minute_that_left_the_window_is_replaced_not_added_to():
    """An hour later the same slot is a fresh bucket; the old minute is out of the window."""
    ring = Ring(RoomMinute)
    first = ring.at(120.0)
    assert first is not None
    first.polls = 7
    later = ring.at(120.0 + MINUTES * 60)  # the same slot, one window later
    assert later is not None and later is not first and later.polls == 0
    window = ring.window(120.0 + MINUTES * 60)
    assert window[-1] is later and sum(b.polls for b in window if b) == 0
    # and a window read long after anything was written is empty, not stale
    assert ring.window(120.0 + 5 * MINUTES * 60) == [None] * MINUTES


def test_a_write_from_before_the_bucket_in_its_place_is_dropped():
    """A clock stepped back by more than the window cannot write into a newer minute."""
    ring = Ring(RoomMinute)
    newer = ring.at(MINUTES * 60.0 + 10)
    assert newer is not None
    assert ring.at(10.0) is None  # the same slot, an hour earlier
    assert ring.at(MINUTES * 60.0 + 20) is newer


@pytest.mark.parametrize("case", ["uniform", "lognormal", "outliers", "equal", "one",
                                  "1 slow in 20", "2 slow in 20"])
def test_p95_is_within_the_sketch_tolerance_of_the_exact_nearest_rank(case):
    """Whatever the distribution, the sketch's p95 is within ~2% of the exact nearest rank."""
    rng = random.Random(case)
    values = {
        "uniform": [rng.uniform(0.01, 5.0) for _ in range(1000)],
        "lognormal": [rng.lognormvariate(-1.0, 1.5) for _ in range(2000)],
        "outliers": [0.05] * 95 + [30.0] * 5,  # p95 is the last fast one
        "equal": [0.2] * 10,
        "one": [3.0],
        # the rank itself: p95 of 20 is the 19th smallest, so one slow is not it, two are
        "1 slow in 20": [0.1] * 19 + [10.0],
        "2 slow in 20": [0.1] * 18 + [10.0] * 2,
    }[case]
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    got, want = sketch.quantile(0.95), exact_p95(values)
    assert got is not None and abs(got - want) <= TOLERANCE * want, (got, want)


def test_p95_of_a_merged_hour_equals_that_of_one_sketch_of_every_sample():
    """Merging per-minute sketches loses nothing: the hour's p95 is as if kept in one."""
    rng = random.Random(7)
    whole, minutes = Sketch(), [Sketch() for _ in range(5)]
    for _ in range(500):
        value = rng.expovariate(2.0)
        whole.add(value)
        rng.choice(minutes).add(value)
    merged = Sketch()
    for part in minutes:
        merged.merge(part)
    assert merged.count == 500 and merged.quantile(0.95) == whole.quantile(0.95)
    assert Sketch().quantile(0.95) is None


def test_a_sketch_has_bounded_bins_whatever_the_latencies():
    """Latencies from nanoseconds to years are clamped: a few hundred bins at most."""
    sketch = Sketch()
    for exponent in range(-9, 13):
        for mantissa in range(1, 100):
            sketch.add(mantissa * 10.0 ** exponent)
    assert len(sketch.bins) <= 520
    assert sketch.quantile(0.0) == pytest.approx(0.001, rel=TOLERANCE)


def test_hooks_count_deliveries_failed_attempts_and_latency_by_minute():
    """2xx outcomes, failed attempts and dead letters land in the webhook's current minute;
    latency is detection to 2xx."""
    clock = Clock()
    history = History(["r1"], ["crm", "mod"], room_limit=10, clock=clock)
    detected = clock.now
    clock.now += 0.5
    history.on_attempt(AttemptReport(delivery("crm"), 1, 503, "HTTP 503", 0.01))
    history.on_attempt(AttemptReport(delivery("crm"), 2, None, "connection refused", 0.01))
    history.on_attempt(AttemptReport(delivery("crm"), 3, None, "", 0.01))  # cancelled: no count
    history.on_attempt(AttemptReport(delivery("crm"), 4, 200, "", 0.01))  # counted by outcome
    history.on_outcome(DeliveryOutcome(delivery("crm", detected), True, 4, 200))
    clock.now += 60
    history.on_outcome(DeliveryOutcome(delivery("mod", detected), False, 5, 422, "HTTP 422"))
    snap = history.snapshot()
    crm, mod = snap["webhooks"]
    assert (crm["webhook"], sum(crm["delivered"]), sum(crm["failed"])) == ("crm", 1, 2)
    assert crm["delivered"][-2] == 1 and crm["failed"][-2] == 2  # the previous minute
    assert crm["p95"][-2] == pytest.approx(0.5, rel=TOLERANCE)
    assert crm["p95_hour"] == pytest.approx(0.5, rel=TOLERANCE)
    assert mod["dead_lettered"][-1] == 1 and mod["p95_hour"] is None
    assert crm["p95"][:-2] == [None] * (MINUTES - 2)


def test_polls_and_errors_count_per_room_and_in_all_rooms():
    """A failed poll counts as a poll and an error, in its room and in all rooms."""
    clock = Clock()
    history = History(["r1", "r2"], [], room_limit=10, clock=clock)
    history.on_poll("r1", 3)
    history.on_poll_failed("r2", RoomlioError("HTTP 500"))
    history.on_poll("r2", 0)
    snap = history.snapshot()
    rows = {row["room"]: row for row in snap["rooms"]}
    assert (rows["r1"]["polls"][-1], rows["r1"]["errors"][-1]) == (1, 0)
    assert (rows["r2"]["polls"][-1], rows["r2"]["errors"][-1]) == (2, 1)
    assert (snap["all_rooms"]["polls"][-1], snap["all_rooms"]["errors"][-1]) == (3, 1)
    assert snap["rooms"][0]["room"] == "r2"  # most errors first


def test_store_samples_keep_the_deepest_outbox_and_the_last_dead_letter_count():
    """Within a minute the outbox shows its deepest point, dead letters their latest count;
    a minute without a sample is a gap (None), not a zero."""
    clock = Clock(60.0 * 1000)
    history = History([], [], room_limit=0, clock=clock)
    for outbox, dead in ((3, 1), (9, 1), (2, 4)):
        history.record_store(outbox, dead)
    history.record_store(None, None)  # a failed read changes nothing
    clock.now += 120
    history.record_store(0, 4)
    store = history.snapshot()["store"]
    assert store["outbox"][-3:] == [9, None, 0]
    assert store["dead_letters"][-3:] == [4, None, 4]


def test_memory_is_bounded_by_the_room_limit_and_the_window_whatever_runs():
    """10,000 rooms polled for three hours: rings for the first room_limit rooms only (and
    never more than ROOM_LIMIT), at most MINUTES buckets each, and /api/status lists
    CHART_ROOMS rooms."""
    clock = Clock(0.0)
    rooms = [f"room-{i}" for i in range(10_000)]
    history = History(rooms, [f"w{i}" for i in range(WEBHOOK_LIMIT + 5)], room_limit=50,
                      clock=clock)
    for step in range(3 * 60 * 6):  # every 10 seconds for three hours
        clock.now = step * 10.0
        history.on_poll(rooms[step % 200], 0)
        history.on_poll_failed(rooms[9_999], RoomlioError("x"))
        history.on_outcome(DeliveryOutcome(delivery(f"new-{step}", clock.now), True, 1, 200))
    assert len(history.rooms) == 50 and len(history.webhooks) == WEBHOOK_LIMIT
    for ring in [*history.rooms.values(), history.all_rooms, *history.webhooks.values()]:
        assert sum(slot is not None for slot in ring._slots) <= MINUTES
    snap = history.snapshot()
    assert len(snap["rooms"]) == CHART_ROOMS and snap["rooms_tracked"] == 50
    # the untracked room's failures are in all rooms' errors: one a step, 6 a minute
    assert snap["all_rooms"]["errors"][:-1] == [6] * (MINUTES - 1)
    # however high room_metrics_limit is set, ROOM_LIMIT rings at most
    assert len(History(rooms, [], room_limit=10_000).rooms) == ROOM_LIMIT


# -- through the listener: /api/status "history" after a real run ---------------------------


async def test_api_status_history_counts_a_run_with_retries_and_a_failed_poll(
        emulator, receiver, tmp_path):
    """crm delivers twice (one after a 503), mod dead-letters once, one poll fails: the
    history's current minutes say exactly that, and the store sample matches the store."""
    emulator.add_room(key="support-42")
    emulator.add_room(key="sales")
    emulator.post("support-42", "URGENT: refund please")  # refunds + urgent: crm and mod
    emulator.post("sales", "cancel my account")  # refunds: crm
    emulator.inject(Fault.status(400), room="sales")
    receiver.set_default_status("/mod", 422)
    receiver.inject(Fault.status(503), path="/crm")
    outcomes = Outcomes()
    config = ops_config(tmp_path, emulator, receiver, rooms=["support-42", "sales"])
    async with serving(config, outcomes) as s:
        await outcomes.wait_for(lambda o: len(o.items) == 3)
        await until(lambda: sum(s.ops.history.snapshot()["all_rooms"]["errors"]) == 1)
        status, text = await s.get("/api/status")
    assert status == 200
    history = json.loads(text)["history"]
    hooks = {w["webhook"]: w for w in history["webhooks"]}
    assert [sum(hooks["crm"][k]) for k in ("delivered", "failed", "dead_lettered")] == [2, 1, 0]
    assert [sum(hooks["mod"][k]) for k in ("delivered", "failed", "dead_lettered")] == [0, 1, 1]
    assert hooks["crm"]["p95_hour"] is not None and hooks["mod"]["p95_hour"] is None
    assert all(len(hooks["crm"][k]) == MINUTES for k in ("delivered", "failed", "p95"))
    rooms = {r["room"]: r for r in history["rooms"]}
    assert sum(rooms["sales"]["errors"]) == 1 and sum(rooms["support-42"]["errors"]) == 0
    assert history["rooms"][0]["room"] == "sales"  # most errors first
    assert sum(history["all_rooms"]["polls"]) >= 3
    samples = [v for v in history["store"]["dead_letters"] if v is not None]
    assert samples[-1] == 1  # this very request read the store and recorded it
    assert history["started"] <= history["now"]


async def test_the_listener_samples_the_store_with_no_page_open(
        emulator, receiver, tmp_path, monkeypatch):
    """With nobody reading /api/status or /metrics, the outbox and dead-letter chart still
    gets its points: the listener reads the store on its own."""
    monkeypatch.setattr(app_module, "SAMPLE_SECONDS", 0.05)
    emulator.add_room(key="r1")
    emulator.post("r1", "refund")
    receiver.set_default_status("/crm", 400)
    outcomes = Outcomes()
    async with serving(ops_config(tmp_path, emulator, receiver, rooms=["r1"]), outcomes) as s:
        await outcomes.wait_for(lambda o: len(o.failed) == 1)
        await until(lambda: s.ops.history.snapshot()["store"]["dead_letters"][-1] == 1)
        # the deepest outbox of the minute: 1 if a sample came while the delivery waited
        assert s.ops.history.snapshot()["store"]["outbox"][-1] in (0, 1)


async def test_a_bug_in_the_store_read_stops_the_sampler_once_not_the_listener(
        emulator, receiver, tmp_path, monkeypatch, caplog):
    """An unexpected error reading the store is logged once with its traceback; the
    listener goes on answering and stops cleanly."""
    monkeypatch.setattr(app_module, "SAMPLE_SECONDS", 0.01)
    calls = 0

    async def broken(self):
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug in stats")

    emulator.add_room(key="r1")
    async with serving(ops_config(tmp_path, emulator, receiver, rooms=["r1"])) as s:
        await until(lambda: s.service.store is not None)
        monkeypatch.setattr(type(s.service.store), "stats", broken)
        await until(lambda: any("reading the store for the charts" in r.getMessage()
                                for r in caplog.records))
        status, _ = await s.get("/healthz")
        assert status == 200
    logged = [r for r in caplog.records if "reading the store for the charts" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None and calls >= 1
