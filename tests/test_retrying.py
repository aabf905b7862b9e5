"""Backoff arithmetic and Retry-After parsing: pure functions, tested with tables."""

from __future__ import annotations

import random

import pytest

from notifier.util.backoff import backoff_delay, parse_retry_after


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (4, 8.0), (10, 60.0),
                                                  (100, 60.0)])
def test_backoff_is_full_jitter_below_an_exponential_ceiling(attempt, ceiling):
    """Every delay lies in [0, min(cap, base*2^(n-1))] and the range is used."""
    rng = random.Random(7)
    delays = [backoff_delay(attempt, base=1.0, cap=60.0, rng=rng) for _ in range(500)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling * 0.8


@pytest.mark.parametrize(("value", "expected"), [
    ("5", 5.0), ("0", 0.0), (" 2.5 ", 2.5), ("-3", 0.0), ("999999", 3600.0),
    ("garbage", None), (None, None), ("nan", None),
    ("Wed, 25 Nov 2026 10:00:30 GMT", 30.0),
])
def test_retry_after_accepts_seconds_and_http_dates(value, expected):
    """Retry-After is read as delta-seconds or an HTTP date, clamped to [0, 1h]."""
    now = 1795600800.0  # 2026-11-25T10:00:00Z
    assert parse_retry_after(value, now=now) == expected
