"""Per-webhook rate limits: a token bucket (pure arithmetic) and its asyncio shell.

``TokenBucket`` hands out reservations: each caller learns how long to wait for its turn,
so a burst queues in order instead of failing. A 429's ``Retry-After`` pauses the whole
bucket, because the service is telling us about the webhook, not about one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from notifier.config import Rate
from notifier.errors import DeliveryTransientError

__all__ = ["DEFAULT_PAUSE", "RateLimiter", "TokenBucket", "Unlimited", "limiter_for"]

#: How long a 429 without Retry-After pauses the webhook (beyond one token's interval).
DEFAULT_PAUSE = 1.0


class TokenBucket:
    """``rate.requests`` tokens, refilled evenly over ``rate.per`` seconds."""

    def __init__(self, rate: Rate, now: float) -> None:
        self.capacity = float(rate.requests)
        self.refill = rate.requests / rate.per
        """Tokens per second."""
        self._tokens = self.capacity
        self._updated = now
        self._paused_until = now

    def _advance(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.refill)
            self._updated = now

    def reserve(self, now: float) -> float:
        """Take the next token; return how many seconds to wait before using it."""
        self._advance(now)
        self._tokens -= 1.0
        wait = 0.0 if self._tokens >= 0 else -self._tokens / self.refill
        return max(wait, self._paused_until - now)

    def pause(self, now: float, seconds: float) -> None:
        """Hand out no turn before ``now + seconds`` (the service asked us to back off)."""
        self._paused_until = max(self._paused_until, now + seconds)
        self._advance(now)
        self._tokens = min(self._tokens, 0.0)  # after a pause, restart at the steady rate

    def paused_for(self, now: float) -> float:
        """Seconds until the current pause ends (0 when not paused)."""
        return max(0.0, self._paused_until - now)


class RateLimiter:
    """Awaits a turn from a TokenBucket before each request to one webhook."""

    def __init__(self, rate: Rate, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.bucket = TokenBucket(rate, clock())

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a turn; a 429 raised inside pauses the webhook for its Retry-After."""
        delay = self.bucket.reserve(self._clock())
        while delay > 0:
            await asyncio.sleep(delay)
            delay = self.bucket.paused_for(self._clock())  # did a 429 arrive meanwhile?
        try:
            yield
        except DeliveryTransientError as exc:
            if exc.status == 429:
                pause = exc.retry_after if exc.retry_after is not None else DEFAULT_PAUSE
                self.bucket.pause(self._clock(), pause)
            raise


class Unlimited:
    """The limiter of a webhook without a rate limit: every turn is immediate."""

    def turn(self) -> Unlimited:
        """No wait (itself, as an async context manager: no generator per request)."""
        return self

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_exc: object) -> None:
        return None


def limiter_for(rate: Rate | None) -> RateLimiter | Unlimited:
    """The limiter for a webhook's ``rate_limit`` (None: unlimited)."""
    return Unlimited() if rate is None else RateLimiter(rate)
