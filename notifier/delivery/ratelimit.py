"""Per-webhook rate limits: the asyncio shell of a token bucket (notifier.util.pacing).

Each request reserves its turn, so a burst queues in order instead of failing. A 429's
``Retry-After`` pauses the whole bucket, because the service is telling us about the
webhook, not about one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from notifier.config import Rate
from notifier.errors import DeliveryTransientError
from notifier.util.pacing import TokenBucket

__all__ = ["DEFAULT_PAUSE", "RateLimiter", "Unlimited", "limiter_for"]

#: How long a 429 without Retry-After pauses the webhook (beyond one token's interval).
DEFAULT_PAUSE = 1.0


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
