"""Retry policies (tenacity) and the pure backoff arithmetic behind them.

Backoff is exponential with full jitter (a random wait between 0 and
``min(cap, base * 2**(attempt-1))``); a ``Retry-After`` given by the server wins when it
is longer, so a rate-limited peer is never hit earlier than it asked.
"""

from __future__ import annotations

import email.utils
import random
import time

from tenacity import RetryCallState
from tenacity.wait import wait_base

__all__ = ["RetryAfterWait", "backoff_delay", "parse_retry_after", "retry_after_of"]

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


class RetryAfterWait(wait_base):
    """Tenacity wait: the server's Retry-After if the error carries one, else full jitter.

    ``offset`` counts attempts already made before this policy started (persisted across
    restarts), so the backoff keeps growing where it left off.
    """

    def __init__(self, *, base: float, cap: float, offset: int = 0,
                 rng: random.Random | None = None) -> None:
        self.base, self.cap, self.offset = base, cap, offset
        self.rng = rng or random.Random()

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = backoff_delay(retry_state.attempt_number + self.offset,
                              base=self.base, cap=self.cap, rng=self.rng)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            return max(delay, float(retry_after))
        return delay


def retry_after_of(exc: BaseException) -> float | None:
    """The Retry-After an error carries, if any."""
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None


