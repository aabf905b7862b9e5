"""The API key's throttle: a 429 pauses every room, the rate falls on refusals and
recovers when they stop, and max_requests_per_second stays a hard cap."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from notifier.polling.throttle import BETA, RECOVERY, KeyThrottle, increase
from notifier.testing import Fault, RoomlioEmulator
from notifier.util.pacing import TokenBucket
from tests.conftest import running


class Clock:
    """A clock the throttle's sleeps advance (no real time passes)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _throttle(clock: Clock, cap: float | None = None) -> KeyThrottle:
    return KeyThrottle(cap, clock=clock, sleep=clock.sleep)


async def _unpaced_second(throttle: KeyThrottle, clock: Clock, requests: int) -> None:
    """``requests`` requests in the second from ``clock.now``, each accepted at once."""
    start = clock.now
    for i in range(requests):
        clock.now = start + i / requests
        assert await throttle.acquire() == clock.now  # no wait
        throttle.answered(200, None, clock.now)
    clock.now = start + 1.0


async def _saturated(throttle: KeyThrottle, clock: Clock, seconds: float) -> None:
    """More demand than the rate for ``seconds``: each request waits its turn, is sent,
    and is accepted."""
    end = clock.now + seconds
    while clock.now < end:
        sent = await throttle.acquire()
        throttle.answered(200, None, sent)


async def test_the_rate_falls_once_per_round_of_refusals_and_honours_retry_after(
        caplog: pytest.LogCaptureFixture) -> None:
    """The first 429 cuts to BETA × the accepted rate and pauses for its Retry-After;
    refusals of requests sent before that cut do not cut again; a later one does."""
    clock = Clock()
    throttle = _throttle(clock)
    await _unpaced_second(throttle, clock, 100)
    assert throttle.rate is None
    with caplog.at_level(logging.DEBUG, "notifier.roomlio"):
        throttle.answered(429, 2.0, clock.now - 0.01)
        assert throttle.rate == pytest.approx(BETA * 100)
        assert throttle.paused_for(clock.now) == pytest.approx(2.0)
        for _ in range(20):  # the rest of the round: under way before the cut
            throttle.answered(429, 2.0, clock.now - 0.005)
        assert throttle.rate == pytest.approx(BETA * 100)
        clock.now += 3.0
        throttle.answered(429, 1.0, clock.now - 0.1)
    assert throttle.rate == pytest.approx(BETA * BETA * 100)
    assert throttle.limited
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "429" in warnings[0].getMessage()
    assert throttle.tally.totals[1] == 22  # refusals, all counted


async def test_the_rate_recovers_when_refusals_stop(caplog: pytest.LogCaptureFixture) -> None:
    """Held-back requests that are accepted raise the rate by increase(rate) a second;
    RECOVERY seconds without a 429 end the episode with one line."""
    clock = Clock()
    throttle = _throttle(clock)
    await _unpaced_second(throttle, clock, 50)
    throttle.answered(429, 1.0, clock.now)
    cut = throttle.rate
    assert cut is not None
    clock.now += 1.0  # the pause
    caplog.clear()
    with caplog.at_level(logging.INFO, "notifier.roomlio"):
        await _saturated(throttle, clock, 10.0)
        assert throttle.rate is not None
        assert throttle.rate == pytest.approx(cut + 10 * increase(cut), rel=0.05)
        assert throttle.limited
        await _saturated(throttle, clock, RECOVERY)
    assert not throttle.limited
    assert throttle.rate > cut + RECOVERY
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "accepted every request" in lines[0], lines
    assert caplog.records[0].levelno == logging.WARNING  # as the line it ends


async def test_the_rate_does_not_grow_while_demand_is_below_it() -> None:
    """A rate that holds nothing back is not tried, so it is not learned."""
    clock = Clock()
    throttle = _throttle(clock)
    await _unpaced_second(throttle, clock, 50)
    throttle.answered(429, 1.0, clock.now)
    cut = throttle.rate
    assert cut is not None
    clock.now += 1.0
    for _ in range(600):  # 10 requests a second for a minute, each well after its turn
        clock.now += 0.1
        assert await throttle.acquire() == clock.now
        throttle.answered(200, None, clock.now)
    assert throttle.rate == cut


async def test_max_requests_per_second_caps_the_learned_rate() -> None:
    """However long Roomlio accepts, the learned rate never passes the configured cap, and
    a first cut from above it starts from the cap."""
    clock = Clock()
    throttle = _throttle(clock, 40)
    await _unpaced_second(throttle, clock, 100)
    throttle.answered(429, None, clock.now)
    assert throttle.rate == pytest.approx(40)
    throttle.answered(429, None, clock.now + 0.5)
    clock.now += 2.0
    await _saturated(throttle, clock, 120.0)
    assert throttle.rate == 40


async def test_a_429_without_retry_after_pauses_briefly() -> None:
    """No Retry-After: every request still waits DEFAULT_PAUSE."""
    clock = Clock()
    throttle = _throttle(clock)
    throttle.answered(429, None, clock.now)
    assert throttle.paused_for(clock.now) == pytest.approx(1.0)
    assert await throttle.acquire() == pytest.approx(1001.0)


async def test_a_429_with_retry_after_pauses_every_room_of_the_key(
        emulator: RoomlioEmulator, make_config) -> None:
    """One room's 429 with Retry-After: 1.5 holds back every room's next request until
    it has passed, not only that room's."""
    rooms = ["r1", "r2", "r3", "r4"]
    for room in rooms:
        emulator.add_room(key=room)
    config = make_config(rooms=rooms, roomlio={"max_poll_interval": "100ms",
                                               "edit_lookback": 0})
    async with running(config):
        await emulator.wait_for(lambda emu: {r.room for r in emu.requests} >= set(rooms))
        emulator.inject(Fault.status(429, retry_after=1.5), room="r1")
        await emulator.wait_for(lambda emu: emu.refused == 1)
        refused_at = next(r.time for r in emulator.requests if r.status == 429)
        # requests already under way when the 429 came arrive within milliseconds
        settled = refused_at + 0.2

        def next_after(emu: RoomlioEmulator, room: str) -> float | None:
            return next((r.time for r in emu.requests if r.room == room
                         and r.time > settled), None)

        await emulator.wait_for(lambda emu: all(next_after(emu, r) for r in rooms))
        gaps = {room: (next_after(emulator, room) or 0.0) - refused_at for room in rooms}
    assert all(gap >= 1.5 - 0.05 for gap in gaps.values()), gaps


async def test_a_429_with_few_requests_behind_it_only_pauses(
        caplog: pytest.LogCaptureFixture) -> None:
    """A refusal of one of a handful of requests says the key is spent (by another
    process, say), not that this one goes too fast: no rate is learned from it, but
    every room pauses and the episode is still told, once."""
    clock = Clock()
    throttle = _throttle(clock)
    sent = await throttle.acquire()
    throttle.answered(429, 2.0, sent)
    assert throttle.rate is None
    assert await throttle.acquire() == pytest.approx(1002.0)
    throttle.answered(429, 2.0, clock.now)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "too few requests" in warnings[0], warnings
    assert throttle.limited


async def test_a_request_that_slept_through_a_new_pause_waits_it_out() -> None:
    """A request waiting for its turn at the learned rate when a 429 comes goes after
    that 429's Retry-After, not at the turn it was given before it."""
    clock = Clock()
    during_sleep: list[Callable[[], None]] = []

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        while during_sleep:
            during_sleep.pop()()

    throttle = KeyThrottle(clock=clock, sleep=sleep)
    await _unpaced_second(throttle, clock, 50)
    throttle.answered(429, 1.0, clock.now)  # a rate is learned; paused for 1 s
    clock.now += 1.0
    first = await throttle.acquire()
    # the 429 for the first request arrives while the second waits for its turn
    during_sleep.append(lambda: throttle.answered(429, 3.0, first))
    second = await throttle.acquire()
    assert second >= first + 3.0


def test_a_token_buckets_new_rate_applies_from_the_next_turn() -> None:
    """set_rate: the turns after it come at the new rate; tokens earned before it count."""
    bucket = TokenBucket(1.0, now=0.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(1.0)  # the next second's turn
    bucket.set_rate(4.0, now=0.5)  # half a token earned at 1/s
    assert bucket.reserve(0.5) == pytest.approx(0.375)  # owes 1.5 tokens at 4/s
    with pytest.raises(ValueError):
        bucket.set_rate(0)
