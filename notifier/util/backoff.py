"""Retry policies (tenacity waits: exponential or a schedule) and the backoff arithmetic.

Backoff is exponential with full jitter (a random wait between 0 and
``min(cap, base * 2**(attempt-1))``); a ``Retry-After`` given by the server wins when it
is longer, so a rate-limited peer is never hit earlier than it asked.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Sequence

from tenacity import RetryCallState
from tenacity.wait import wait_base

from notifier.util.schedule import schedule_delay

__all__ = [
    "TRANSIENT_STATUSES",
    "RetryAfterAwareWait",
    "RetryAfterWait",
    "ScheduleWait",
    "backoff_delay",
    "parse_retry_after",
    "retry_after_of",
    "retry_wait",
]

#: HTTP statuses worth retrying, from Roomlio and from webhooks alike: timeouts, too
#: early, rate limited, and every server error.
TRANSIENT_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))

#: A Retry-After longer than this is treated as this (a misconfigured peer must not
#: park a delivery for a week).
MAX_RETRY_AFTER = 3600.0


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 62))
    return rng.uniform(0, ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class RetryAfterAwareWait(wait_base):
    """Tenacity wait: a policy's own delay, or the server's Retry-After when longer.

    ``offset`` counts attempts already made before this policy started (persisted across
    restarts), so the backoff keeps growing where it left off.
    """

    def __init__(self, *, offset: int = 0, rng: random.Random | None = None) -> None:
        self.offset = offset
        self.rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """The policy's own wait before retry number ``attempt`` (offset included)."""
        raise NotImplementedError

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self.delay(retry_state.attempt_number + self.offset)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        retry_after = retry_after_of(exc) if exc is not None else None
        return max(delay, retry_after) if retry_after is not None else delay


class RetryAfterWait(RetryAfterAwareWait):
    """Full-jitter exponential backoff, or the server's Retry-After when longer."""

    def __init__(self, *, base: float, cap: float, offset: int = 0,
                 rng: random.Random | None = None) -> None:
        super().__init__(offset=offset, rng=rng)
        self.base, self.cap = base, cap

    def delay(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self.base, cap=self.cap, rng=self.rng)


def retry_after_of(exc: BaseException) -> float | None:
    """The Retry-After an error carries, if any."""
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None


class ScheduleWait(RetryAfterAwareWait):
    """Tenacity wait following an explicit schedule; ``offset`` counts earlier attempts."""

    def __init__(self, schedule: Sequence[float], *, offset: int = 0,
                 rng: random.Random | None = None) -> None:
        super().__init__(offset=offset, rng=rng)
        self.schedule = tuple(schedule)

    def delay(self, attempt: int) -> float:
        return schedule_delay(attempt, self.schedule, rng=self.rng)


def retry_wait(schedule: Sequence[float] | None, *, base: float, cap: float, offset: int,
               rng: random.Random) -> wait_base:
    """The wait policy of a webhook: its schedule, or exponential backoff when it has none."""
    if schedule:
        return ScheduleWait(schedule, offset=offset, rng=rng)
    return RetryAfterWait(base=base, cap=cap, offset=offset, rng=rng)
