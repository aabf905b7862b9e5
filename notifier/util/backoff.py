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
from typing import Any, Generic, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryAction,
    RetryCallState,
    retry_base,
    retry_if_exception_type,
    stop_after_attempt,
)
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
    """The one retry loop of the notifier, decided by tenacity: ``attempt(1)``,
    ``attempt(2)``, … until one returns, or tenacity's ``retry`` declines an error, or its
    ``stop`` says the budget is spent (``attempts``: stop_after_attempt; None: never); the
    last error is re-raised as it is. Between two, ``before_sleep`` is awaited, then
    ``sleep`` for the time tenacity's ``wait`` gives.

    Built once (per webhook, per client) and shared by every call: tenacity's retry, stop
    and wait objects are stateless, and each call keeps its own ``RetryCallState``, which
    they are asked after every failed attempt, the first included, in AsyncRetrying's
    order (retry, wait, stop, before_sleep, sleep). The loop itself is a plain one:
    iterating an AsyncRetrying costs more CPU than the rest of a delivery's own work, and
    keeps its state on the shared object (``retrying``, given to the states as their
    ``retry_object``, is never iterated).
    """

    __slots__ = ("before_sleep", "retry", "retrying", "sleep", "stop", "wait")

    def __init__(self, retry_on: type[BaseException] | retry_base, *, wait: wait_base,
                 attempts: int | None = None, stop: stop_base | None = None,
                 before_sleep: Callable[[RetryCallState], Awaitable[None]] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.retry: retry_base = (retry_if_exception_type(retry_on)
                                  if isinstance(retry_on, type) else retry_on)
        if stop is None:
            stop = stop_never if attempts is None else stop_after_attempt(attempts)
        self.stop, self.wait = stop, wait
        self.before_sleep, self.sleep = before_sleep, sleep
        self.retrying = AsyncRetrying(retry=self.retry, wait=wait, stop=stop,
                                      before_sleep=before_sleep, sleep=sleep, reraise=True)

    async def call(self, attempt: Callable[[int], Awaitable[T]], *, first: int = 1,
                   args: tuple[Any, ...] = ()) -> T:
        """``attempt(n)``'s result, n the attempt number; or its last error.

        ``first`` numbers the first attempt of this call (attempts made before it, by an
        earlier run, count toward ``stop`` and the waits); ``args`` are the state's
        ``args``, for ``before_sleep`` to read.
        """
        started = time.monotonic()
        try:
            return await attempt(first)  # most calls end here: no RetryCallState for them
        except BaseException as exc:
            state = RetryCallState(self.retrying, attempt, args, {})
            state.start_time, state.attempt_number = started, first
            state.set_exception((type(exc), exc, exc.__traceback__))
            if not self._again(state):
                raise
        return await self._retry(attempt, state)

    async def _retry(self, attempt: Callable[[int], Awaitable[T]], state: RetryCallState) -> T:
        """The loop after a failed attempt that tenacity retries (``state``: its outcome)."""
        while True:
            if self.before_sleep is not None:
                await self.before_sleep(state)
            await self.sleep(state.upcoming_sleep)
            state.prepare_for_next_attempt()
            try:
                return await attempt(state.attempt_number)
            except BaseException as exc:
                state.set_exception((type(exc), exc, exc.__traceback__))
                if not self._again(state):
                    raise

    def _again(self, state: RetryCallState) -> bool:
        """Whether tenacity retries the failure in ``state`` (and, if so, after how long:
        ``upcoming_sleep``, ``next_action``)."""
        if not self.retry(state):
            return False
        state.upcoming_sleep = sleep = self.wait(state)
        if self.stop(state):
            return False
        state.next_action = RetryAction(sleep)
        state.idle_for += sleep
        return True
