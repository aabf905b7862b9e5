"""Retry policies (tenacity waits: exponential or a schedule) and the backoff arithmetic.

The notifier retries one way: a ``Retry`` policy, run by tenacity (retry one error
class, re-raise the last error), whose wait is one of the pure wait functions here (or
notifier.util.schedule's) plugged in as a tenacity wait. Loops that are not retries of
one call (restarting a worker, backing off a failing room) count their failures and
take their pauses from the same arithmetic (``exponential_delay``, ``Backoff``).

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
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base, stop_never
from tenacity.wait import wait_base

from notifier.util.schedule import schedule_delay

T = TypeVar("T")

__all__ = [
    "TRANSIENT_STATUSES",
    "Backoff",
    "ExponentialWait",
    "Retry",
    "RetryAfterAwareWait",
    "RetryAfterWait",
    "ScheduleWait",
    "backoff_delay",
    "exponential_delay",
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


class ExponentialWait(wait_base):
    """Tenacity wait: exponential_delay without jitter (retrying our own store, not a peer)."""

    def __init__(self, *, base: float, cap: float) -> None:
        self.base, self.cap = base, cap

    def __call__(self, retry_state: RetryCallState) -> float:
        return exponential_delay(retry_state.attempt_number, base=self.base, cap=self.cap)


class Retry(Generic[T]):
    """The one retry loop of the notifier, run by tenacity: ``attempt(1)``, ``attempt(2)``,
    … until one returns, raises anything but a ``retry_on`` error, or ``attempts`` are
    spent (None: until one succeeds); the last error is re-raised as it is. Between two,
    ``before_sleep`` is awaited, then ``sleep`` for the time ``wait`` gives.

    The AsyncRetrying is built, and the loop handed to it, only when the first attempt
    fails with ``retry_on``: that failure enters tenacity as its attempt 1, so the waits,
    the budget and ``before_sleep`` see every attempt. Most first attempts succeed, and
    a tenacity loop costs more CPU than the rest of a delivery's own work; one is built
    per call, since tenacity keeps a loop's state on it.
    """

    __slots__ = ("attempts", "before_sleep", "retry_on", "sleep", "wait")

    def __init__(self, retry_on: type[BaseException], *, wait: wait_base,
                 attempts: int | None = None,
                 before_sleep: Callable[[RetryCallState], Awaitable[None]] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.retry_on, self.wait, self.attempts = retry_on, wait, attempts
        self.before_sleep, self.sleep = before_sleep, sleep

    def retrying(self) -> AsyncRetrying:
        """This policy as a tenacity AsyncRetrying (one loop's worth)."""
        stop: stop_base = stop_never if self.attempts is None else stop_after_attempt(
            self.attempts)
        return AsyncRetrying(retry=retry_if_exception_type(self.retry_on), wait=self.wait,
                             stop=stop, before_sleep=self.before_sleep, sleep=self.sleep,
                             reraise=True)

    async def call(self, attempt: Callable[[int], Awaitable[T]]) -> T:
        """``attempt(n)``'s result, n the 1-based attempt number; or its last error."""
        try:
            return await attempt(1)
        except self.retry_on as exc:
            failed: BaseException | None = exc
        async for step in self.retrying():
            with step:
                number = step.retry_state.attempt_number
                if failed is not None:
                    error, failed = failed, None  # tenacity's attempt 1: the one above
                    raise error
                return await attempt(number)
        raise AssertionError("unreachable")  # pragma: no cover
