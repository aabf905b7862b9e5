"""The circuit breaker's state machine and the retry schedule arithmetic, as tables."""

from __future__ import annotations

import random

import pytest

from notifier.delivery.breaker import Breaker, BreakerSettings, BreakerState
from notifier.retry_schedule import JITTER, STANDARD_SCHEDULE, schedule_delay

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(window: int = 4, threshold: float = 0.75, cool_down: float = 10.0
            ) -> tuple[Breaker, Clock]:
    clock = Clock()
    return Breaker(BreakerSettings(window, threshold, cool_down), clock=clock), clock


@pytest.mark.parametrize(("results", "state"), [
    ([], CLOSED),
    ([False, False, False], CLOSED),                 # the window is not full yet
    ([False, False, False, False], OPEN),
    ([True, False, False, False], OPEN),             # 3 of 4 = 75%
    ([True, True, False, False], CLOSED),            # 50%
    ([True, True, True, True, False, False], CLOSED),     # the last 4: T T F F
    ([True, True, True, False, False, False, False], OPEN),
])
def test_breaker_opens_when_the_share_of_failures_in_the_window_reaches_the_threshold(
        results, state):
    """Only the last `window` attempts count, and only once the window is full."""
    b, _ = breaker()
    for ok in results:
        b.record(ok)
    assert b.state is state


def test_an_open_breaker_admits_one_probe_after_the_cool_down_and_closes_on_success():
    """Open: wait; after the cool-down one probe goes, the others wait; success closes."""
    b, clock = breaker()
    for _ in range(4):
        b.record(False)
    assert b.state is OPEN and b.retry_at == 1010.0
    first = b.admit()
    assert (first.go, first.wait) == (False, 10.0)
    clock.now = 1010.0
    probe = b.admit()
    assert probe.go and probe.probe and b.state is HALF
    other = b.admit()
    assert (other.go, other.wait) == (False, None)
    transition = b.record(True, probe=True)
    assert transition is not None and (transition.before, transition.after) == (HALF, CLOSED)
    assert b.admit().go and not b.admit().probe


def test_a_failed_probe_opens_the_breaker_for_another_cool_down():
    """A failing probe restarts the cool-down from the moment it failed."""
    b, clock = breaker()
    for _ in range(4):
        b.record(False)
    clock.now = 1011.0
    assert b.admit().probe
    b.record(False, probe=True)
    assert b.state is OPEN and b.retry_at == 1021.0


def test_results_of_attempts_in_flight_while_open_change_nothing():
    """A late success from before the breaker opened does not close it."""
    b, _ = breaker()
    for _ in range(4):
        b.record(False)
    assert b.record(True) is None and b.state is OPEN


def test_an_abandoned_probe_lets_the_next_attempt_probe_at_once():
    """A probe cancelled at shutdown does not leave the breaker half-open forever."""
    b, clock = breaker()
    for _ in range(4):
        b.record(False)
    clock.now = 1020.0
    assert b.admit().probe
    b.abandon_probe()
    assert b.state is OPEN and b.admit().probe


def test_a_breaker_with_window_zero_never_opens():
    """breaker_window: 0 turns the breaker off."""
    b, _ = breaker(window=0)
    for _ in range(50):
        b.record(False)
    assert b.state is CLOSED


def test_a_restored_half_open_breaker_resumes_open():
    """The probe of a previous run was lost with it; the restored breaker probes again."""
    b, _ = breaker()
    b.restore(HALF, 995.0)
    assert b.state is OPEN and b.retry_at == 1005.0


@pytest.mark.parametrize(("retry", "step"), [
    (1, 5.0), (2, 300.0), (3, 1800.0), (4, 7200.0), (5, 18000.0), (6, 36000.0), (7, 36000.0),
    (12, 36000.0),
])
def test_the_standard_schedule_spreads_retries_over_about_a_day(retry, step):
    """Retry N waits the Nth step, stretched by at most 10%; past the end, the last step."""
    rng = random.Random(retry)
    delay = schedule_delay(retry, STANDARD_SCHEDULE, rng=rng)
    assert step <= delay <= step * (1 + JITTER)


def test_the_standard_schedule_totals_about_27_hours():
    """Eight attempts: at once, then 5s, 5m, 30m, 2h, 5h, 10h, 10h (as documented)."""
    assert len(STANDARD_SCHEDULE) + 1 == 8
    assert sum(STANDARD_SCHEDULE) / 3600 == pytest.approx(27.6, abs=0.05)
