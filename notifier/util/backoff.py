"""Retry policies (tenacity) and the pure backoff arithmetic behind them.

The notifier retries one way: ``retrying`` builds a tenacity AsyncRetrying that runs
every attempt, the first included, and re-raises the last error; its wait is one of
the pure wait functions here (or notifier.util.schedule's), plugged in as a tenacity
wait. Loops that are not retries of one call (restarting a worker, backing off a
failing room) count their failures and take their pauses from the same arithmetic
(``exponential_delay``, ``Backoff``).

Backoff is exponential, ``min(cap, base * 2**(attempt-1))``; a retry of a request to a
peer draws its wait with full jitter (at random between 0 and that), and a
``Retry-After`` given by the server wins when it is longer, so a rate-limited peer is
never hit earlier than it asked.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base, stop_never
from tenacity.wait import wait_base

__all__ = [
    "TRANSIENT_STATUSES",
    "Backoff",
    "ExponentialWait",
    "RetryAfterAwareWait",
    "RetryAfterWait",
    "backoff_delay",
    "exponential_delay",
    "parse_retry_after",
    "retry_after_of",
    "retrying",
]

#: HTTP statuses worth retrying, from Roomlio and from webhooks alike: timeouts, too
#: early, rate limited, and every server error.
TRANSIENT_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))

#: A Retry-After longer than this is treated as this (a misconfigured peer must not
#: park a delivery for a week).
MAX_RETRY_AFTER = 3600.0


def exponential_delay(attempt: int, *, base: float, cap: float) -> float:
    """``base`` doubled for each retry before number ``attempt`` (1-based), up to ``cap``."""
    return min(cap, base * 2.0 ** min(attempt - 1, 62))


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
    return rng.uniform(0, exponential_delay(attempt, base=base, cap=cap))


class Backoff:
    """The pauses of a loop that tries until it succeeds: ``base``, twice that, … up to
    ``cap`` (exponential_delay, no jitter); ``reset`` after a success."""

    __slots__ = ("base", "cap", "failures")

    def __init__(self, *, base: float, cap: float) -> None:
        self.base, self.cap = base, cap
        self.failures = 0

    def next(self) -> float:
        """Count a failure; the pause before the next try."""
        self.failures += 1
        return exponential_delay(self.failures, base=self.base, cap=self.cap)

    def reset(self) -> None:
        """A success: the next failure pauses ``base`` again."""
        self.failures = 0


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


class ExponentialWait(wait_base):
    """Tenacity wait: exponential_delay without jitter (retrying our own store, not a peer)."""

    def __init__(self, *, base: float, cap: float) -> None:
        self.base, self.cap = base, cap

    def __call__(self, retry_state: RetryCallState) -> float:
        return exponential_delay(retry_state.attempt_number, base=self.base, cap=self.cap)


def retrying(retry_on: type[BaseException], *, wait: wait_base, attempts: int | None = None,
             before_sleep: Callable[[RetryCallState], Awaitable[None]] | None = None,
             sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncRetrying:
    """The one retry loop: up to ``attempts`` tries (None: until one succeeds), the first
    included; only a ``retry_on`` error is retried, after ``wait``; the last error is
    re-raised as it is. Build one per call: tenacity keeps a loop's state on it."""
    stop: stop_base = stop_never if attempts is None else stop_after_attempt(attempts)
    return AsyncRetrying(retry=retry_if_exception_type(retry_on), wait=wait, stop=stop,
                         before_sleep=before_sleep, sleep=sleep, reraise=True)
