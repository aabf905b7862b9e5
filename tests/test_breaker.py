"""The circuit breaker's state machine and the retry schedule arithmetic, as tables."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from notifier.config import Config, DeliverySettings
from notifier.delivery.breaker import Breaker, BreakerSettings, BreakerState, probe_wait
from notifier.delivery.formats import check_config, load_config
from notifier.util.schedule import JITTER, STANDARD_SCHEDULE, schedule_delay

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Unjittered(random.Random):
    """Every jitter factor is 1: waits are exactly 1s, 1.6s, 2.56s, ..."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def breaker(window: int = 4, threshold: float = 0.75, cool_down: float = 10.0, *,
            min_attempts: int | None = None, period: float = 60.0,
            rng: random.Random | None = None) -> tuple[Breaker, Clock]:
    clock = Clock()
    settings = BreakerSettings(window, threshold, cool_down,
                               window if min_attempts is None else min_attempts, period)
    return Breaker(settings, clock=clock, rng=rng or Unjittered()), clock


def tripped(**kwargs) -> tuple[Breaker, Clock]:
    """A breaker (window 4) that its fourth failure in a row has just opened."""
    b, clock = breaker(**kwargs)
    for _ in range(4):
        b.record(False)
    assert b.state is OPEN
    return b, clock


@pytest.mark.parametrize(("results", "state"), [
    ([], CLOSED),
    ([False, False, False], CLOSED),                 # fewer than min_attempts judged
    ([False, False, False, False], OPEN),
    ([True, False, False, False], OPEN),             # 3 of 4 = 75%
    ([True, True, False, False], CLOSED),            # 50%
    ([True, True, True, True, False, False], CLOSED),     # the last 4: T T F F
    ([True, True, True, False, False, False, False], OPEN),
])
def test_breaker_opens_when_the_share_of_failures_in_the_window_reaches_the_threshold(
        results, state):
    """Only the last `window` attempts count, and only once min_attempts are judged."""
    b, _ = breaker()
    for ok in results:
        b.record(ok)
    assert b.state is state


# (seconds after the previous attempt, ok) with window 20, min_attempts 10, period 60s
@pytest.mark.parametrize(("attempts", "state"), [
    ([(0.1, False)] * 9, CLOSED),                    # a handful in a quiet webhook
    ([(0.1, False)] * 10, OPEN),                     # ten in a second
    ([(7.0, False)] * 10, CLOSED),                   # ten in 63s: the first is too old
    ([(6.0, False)] * 10, OPEN),                     # ten within 54s
    ([(0.1, True)] * 5 + [(0.1, False)] * 9, CLOSED),     # 9 of 14 = 64%
    ([(0.1, True)] * 3 + [(0.1, False)] * 7, OPEN),      # 7 of 10 = 70%
    ([(0.1, True)] * 3 + [(61.0, False)] + [(0.1, False)] * 9, OPEN),   # successes expired
    ([(0.1, False)] * 9 + [(61.0, False)] * 3, CLOSED),  # old failures expired, 1 judged
])
def test_the_breaker_judges_a_minimum_of_attempts_within_the_period(attempts, state):
    """Failures open it only when at least min_attempts were made in the last period."""
    b, clock = breaker(window=20, threshold=0.7, cool_down=60.0, min_attempts=10)
    for gap, ok in attempts:
        clock.now += gap
        b.record(ok)
    assert b.state is state


def test_an_open_breaker_admits_one_probe_after_a_second_and_closes_on_success():
    """Open: wait 1s (not the cool-down); then one probe goes, the others wait."""
    b, clock = tripped()
    assert b.retry_at == 1001.0
    first = b.admit()
    assert (first.go, first.wait) == (False, 1.0)
    clock.now = 1001.0
    probe = b.admit()
    assert probe.go and probe.probe and b.state is HALF
    other = b.admit()
    assert (other.go, other.wait) == (False, None)
    transition = b.record(True, probe=True)
    assert transition is not None and (transition.before, transition.after) == (HALF, CLOSED)
    assert b.admit().go and not b.admit().probe


@pytest.mark.parametrize(("cool_down", "waits"), [
    (10.0, [1.0, 1.6, 2.56, 4.096, 6.5536, 9.0, 9.0]),   # capped: in [8s, 10s]
    (60.0, [1.0, 1.6, 2.56, 4.096, 6.5536, 10.48576, 16.777216, 26.8435456, 42.94967296,
            54.0, 54.0]),
    (0.3, [0.27, 0.27, 0.27]),                      # at the cap: jittered below it
])
def test_the_wait_before_a_probe_grows_by_1_6_per_failed_probe_up_to_the_cool_down(
        cool_down, waits):
    """gRPC connection backoff: 1s, x1.6 per failed probe, capped at breaker_cooldown."""
    b, clock = tripped(cool_down=cool_down)
    seen = []
    for _ in waits:
        assert b.retry_at is not None
        seen.append(b.retry_at - clock.now)
        clock.now = b.retry_at
        assert b.admit().probe
        b.record(False, probe=True)
    assert seen == pytest.approx(waits)


@pytest.mark.parametrize("step", [0, 1, 3, 8, 20])
def test_each_probe_wait_is_jittered_by_at_most_20_percent_and_never_above_the_cap(step):
    """Jitter spreads the probes of many webhooks; the cap bounds every wait."""
    rng = random.Random(step)
    waits = [probe_wait(step, 60.0, rng) for _ in range(200)]
    middle = min(60.0, 1.6 ** step)
    assert all(0.8 * middle - 1e-9 <= w <= min(60.0, 1.2 * middle) for w in waits)
    assert max(waits) - min(waits) > 0.15 * middle  # it does vary, at the cap too


def test_a_close_ends_the_spell_and_reports_when_its_failures_began():
    """The first close after an outage names its start: the retries to hurry."""
    b, clock = breaker()
    for _ in range(4):
        clock.now += 0.5
        b.record(False)
    clock.now = b.retry_at or 0
    assert b.admit().probe
    transition = b.record(True, probe=True)
    assert transition is not None and transition.recovered_since == 1000.5


def test_a_flapping_receiver_keeps_the_longer_wait_and_is_not_hurried_again():
    """Reopened soon after closing: the wait grows on, and no second recovery burst."""
    b, clock = tripped()
    clock.now = b.retry_at or 0
    b.admit()
    assert b.record(True, probe=True).recovered_since is not None  # type: ignore[union-attr]
    for _ in range(4):
        clock.now += 0.1
        b.record(False)
    assert b.state is OPEN and b.retry_at == pytest.approx(clock.now + 1.6)
    clock.now = b.retry_at or 0
    b.admit()
    again = b.record(True, probe=True)
    assert again is not None and again.after is CLOSED and again.recovered_since is None


def test_after_a_calm_period_a_new_outage_starts_again_from_one_second():
    """The backoff resets once the breaker stayed closed for a whole period."""
    b, clock = tripped(period=60.0)
    clock.now = b.retry_at or 0
    b.admit()
    b.record(True, probe=True)
    clock.now += 61.0
    for _ in range(4):
        b.record(False)
    assert b.retry_at == pytest.approx(clock.now + 1.0)


def test_results_of_attempts_in_flight_while_open_change_nothing():
    """A late success from before the breaker opened does not close it."""
    b, _ = tripped()
    assert b.record(True) is None and b.state is OPEN


def test_an_abandoned_probe_lets_the_next_attempt_probe_at_once():
    """A probe cancelled at shutdown does not leave the breaker half-open forever."""
    b, clock = tripped()
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


@pytest.mark.parametrize("saved", [OPEN, HALF])
def test_a_restored_open_breaker_probes_no_later_than_it_would_have(saved):
    """A restart keeps the open state but never lengthens its wait (nor resets it to
    the cool-down): the probe is due the shortest wait after it last opened."""
    b, _ = breaker(cool_down=60.0)
    b.restore(saved, 995.0)
    assert b.state is OPEN and b.retry_at == pytest.approx(995.8)
    assert b.admit().probe  # 995.8 is past: at once
    fresh, _ = breaker(cool_down=60.0)
    fresh.restore(OPEN, 999.9)
    assert fresh.admit().wait == pytest.approx(0.7)


def test_a_restored_breaker_recovers_the_failures_since_the_saved_streak_began():
    """After a restart the first close still hurries the outage's retries."""
    b, _ = breaker()
    b.restore(OPEN, 990.0, since=980.0)
    assert b.admit().probe
    transition = b.record(True, probe=True)
    assert transition is not None and transition.recovered_since == 980.0


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


CONFIG = """\
roomlio:
  base_url: https://api.roomlio.com/rpc
  api_key: rk_test
rooms:
  - key: support-42
delivery:
  breaker_period: 2m
webhooks:
  crm:
    url: https://crm.example.com/hook
{crm}
rules:
  - name: refunds
    keywords: [refund]
    notify: [crm]
"""


def load(tmp_path: Path, crm: str) -> Config:
    path = tmp_path / "rules.yaml"
    path.write_text(CONFIG.format(crm=crm))
    return load_config(str(path), env={})


def test_the_breaker_settings_default_to_ten_attempts_in_a_minute(tmp_path):
    """breaker_min_attempts and breaker_period are declared like the other settings."""
    crm = load(tmp_path, "    breaker_min_attempts: 12").webhooks["crm"]
    assert (crm.breaker_window, crm.breaker_min_attempts, crm.breaker_period) == (20, 12, 120.0)
    assert (DeliverySettings().breaker_min_attempts, DeliverySettings().breaker_period) == (
        10, 60.0)


def test_a_small_window_lowers_the_inherited_minimum_of_attempts(tmp_path):
    """breaker_window: 4 alone judges 4 attempts (the inherited minimum of 10 would never
    be reached)."""
    crm = load(tmp_path, "    breaker_window: 4").webhooks["crm"]
    assert (crm.breaker_window, crm.breaker_min_attempts) == (4, 4)


@pytest.mark.parametrize(("crm", "line", "key", "fragment"), [
    ("    breaker_window: 5\n    breaker_min_attempts: 8", 12,
     "webhooks.crm.breaker_min_attempts", "is 8, more than breaker_window (5): the breaker "
                                          "could never open"),
    ("    breaker_min_attempts: 0", 11, "webhooks.crm.breaker_min_attempts",
     "from 1 to 10000 (got 0)"),
    ("    breaker_period: soon", 11, "webhooks.crm.breaker_period", "duration"),
])
def test_unusable_breaker_settings_are_reported_at_their_line(tmp_path, crm, line, key,
                                                              fragment):
    """A minimum the window can never hold, or garbage, names its line and the fix."""
    path = tmp_path / "rules.yaml"
    path.write_text(CONFIG.format(crm=crm))
    found = check_config(str(path), {})
    assert any(p.line == line and p.key == key and fragment in p.message for p in found), (
        "\n".join(map(str, found)))


@pytest.mark.parametrize(("history", "state"), [
    # (seconds after the previous attempt, ok): window 4, threshold 0.75, min_attempts 4
    ([(0, False), (0, False), (0, False), (0, True)], OPEN),    # the success is the 4th judged
    ([(0, False), (0, False), (0, False), (61, True)], CLOSED),  # the failures are too old
    ([(0, False), (61, True), (0, True), (0, True)], CLOSED),
    ([(0, True), (0, True), (0, True), (0, True)], CLOSED),
])
def test_a_success_is_judged_with_the_failures_of_the_period(history, state):
    """A success can open the breaker (it makes the minimum of judged attempts, most of them
    failures); it never does when no failure is left in the period (the fast path)."""
    b, clock = breaker(window=4, threshold=0.75, min_attempts=4)
    for seconds, ok in history:
        clock.now += seconds
        b.record(ok)
    assert b.state is state
