"""The one token bucket: turns at a steady rate, in bursts up to a size, in the order asked.

It hands out reservations: each caller learns how long to wait for its turn, so a burst
queues in order instead of failing. The arithmetic is pure (``now`` passed in, for
tables of tests); ``now`` left out reads the bucket's clock. Its users: the Roomlio
client's global request budget (``max_requests_per_second``: a burst of one, so any
window of T seconds holds at most ``1 + rate × T`` requests) and each webhook's
``rate_limit`` (a burst of its ``requests``, paused by a 429's Retry-After), and
the Roomlio key's learned rate (notifier.polling.throttle), whose rate changes as it learns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["TokenBucket"]


class _Rate(Protocol):
    """At most ``requests`` per ``per`` seconds, in bursts of up to ``requests``."""

    @property
    def requests(self) -> int: ...

    @property
    def per(self) -> float: ...


class TokenBucket:
    """``rate`` turns a second in bursts of one, or ``rate.requests`` tokens refilled
    evenly over ``rate.per`` seconds (a config Rate); it starts full."""

    def __init__(self, rate: float | _Rate, now: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(rate, int | float):
            self.capacity, self.refill = 1.0, float(rate)
        else:
            self.capacity, self.refill = float(rate.requests), rate.requests / rate.per
        """Most tokens held (the longest burst), and tokens added per second."""
        self._clock = clock
        start = clock() if now is None else now
        self._tokens = self.capacity
        self._updated = start
        self._paused_until = start

    def _advance(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.refill)
            self._updated = now

    def reserve(self, now: float | None = None) -> float:
        """Take the next token; return how many seconds to wait before using it."""
        if now is None:
            now = self._clock()
        self._advance(now)
        self._tokens -= 1.0
        wait = 0.0 if self._tokens >= 0 else -self._tokens / self.refill
        return max(wait, self._paused_until - now)

    def set_rate(self, rate: float, now: float | None = None) -> None:
        """Hand out ``rate`` turns a second from ``now`` on (tokens earned before it at
        the old rate); turns already handed out keep their times."""
        if not rate > 0:
            raise ValueError(f"a token bucket's rate must be > 0, not {rate}")
        self._advance(self._clock() if now is None else now)
        self.refill = float(rate)

    def pause(self, now: float, seconds: float) -> None:
        """Hand out no turn before ``now + seconds`` (the service asked us to back off)."""
        self._paused_until = max(self._paused_until, now + seconds)
        self._advance(now)
        self._tokens = min(self._tokens, 0.0)  # after a pause, restart at the steady rate

    def paused_for(self, now: float) -> float:
        """Seconds until the current pause ends (0 when not paused)."""
        return max(0.0, self._paused_until - now)

    async def take(self) -> None:
        """Wait for the next turn (by the bucket's clock)."""
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
