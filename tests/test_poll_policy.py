"""The pause before a room's next poll after a failure, and the jitter (notifier.polling.policy)."""

from __future__ import annotations

import random

import pytest

from notifier.polling.policy import MAX_ROOM_BACKOFF, failure_delay, jittered


@pytest.mark.parametrize(("failures", "room_unknown", "expected"), [
    (1, False, 4.0),                # poll_interval 2 s, doubled once
    (3, False, 16.0),               # doubled per failure in a row
    (7, False, 256.0),
    (8, False, MAX_ROOM_BACKOFF),   # 512 s would pass the ceiling
    (50, False, MAX_ROOM_BACKOFF),  # the exponent stops, the pause stays at the ceiling
    (1, True, MAX_ROOM_BACKOFF),    # a room Roomlio does not know: the longest at once
])
def test_failure_delay_doubles_up_to_the_ceiling(failures, room_unknown, expected):
    """A failing room waits poll_interval × 2^failures, at most MAX_ROOM_BACKOFF."""
    assert failure_delay(failures, 2.0, room_unknown=room_unknown) == expected


def test_failure_delay_stops_doubling_after_ten_failures():
    """With a tiny poll_interval the doubling stops at 2^10, below the ceiling."""
    assert failure_delay(11, 0.01) == failure_delay(10, 0.01) == pytest.approx(10.24)


def test_jitter_only_ever_makes_a_pause_earlier():
    """A jittered pause lies in [0.9, 1.0] of the planned one: never later."""
    rng = random.Random(7)
    pauses = [jittered(10.0, rng) for _ in range(1000)]
    assert all(9.0 <= p <= 10.0 for p in pauses)
    assert min(pauses) < 9.1 and max(pauses) > 9.9  # the whole range is used
