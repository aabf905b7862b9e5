"""Per-webhook limits: requests in flight (``Slots``) and rate (the asyncio shell of a
token bucket, notifier.util.pacing).

Each request reserves its turn, so a burst queues in order instead of failing. A 429's
``Retry-After`` pauses the whole bucket, because the service is telling us about the
webhook, not about one request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from notifier.config import Rate
from notifier.errors import DeliveryTransientError
from notifier.util.pacing import TokenBucket

__all__ = ["DEFAULT_PAUSE", "UNLIMITED", "RateLimiter", "Slots", "Unlimited", "limiter_for"]

#: How long a 429 without Retry-After pauses the webhook (beyond one token's interval).
DEFAULT_PAUSE = 1.0


class Slots:
    """At most ``n`` holders at once (``async with slots:``), the others admitted in the
    order they came: asyncio.Semaphore's contract, with a released slot handed straight to
    the first waiter. A lane holds up to 512 deliveries for 64 slots, where the
    Semaphore's checks of its waiters showed in the profile (bench/RESULTS.md)."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def free(self) -> int:
        """Slots nobody holds or has been handed."""
        return self._free

    async def __aenter__(self) -> None:
        if not self.take_now():
            await self.take()

    def take_now(self) -> bool:
        """Take a slot if one is free and nobody waits for it (then ``release`` it)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait for a slot, after those who came before (then ``release`` it)."""
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(handed)
        try:
            await handed
        except asyncio.CancelledError:
            if handed.cancelled():  # cancelled while waiting: it never held a slot
                # a release may have passed over its cancelled turn already
                with contextlib.suppress(ValueError):
                    self._waiters.remove(handed)
            else:  # handed a slot, then cancelled before it ran: pass the slot on
                self.release()
            raise

    async def __aexit__(self, *_exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Give a slot back: to the first waiter, or free."""
        waiters = self._waiters
        while waiters:
            handed = waiters.popleft()
            if not handed.done():
                handed.set_result(None)
                return
        self._free += 1


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


#: The one limiter of every webhook without a rate limit (the sender skips its turn).
UNLIMITED = Unlimited()


def limiter_for(rate: Rate | None) -> RateLimiter | Unlimited:
    """The limiter for a webhook's ``rate_limit`` (None: unlimited, ``UNLIMITED``)."""
    return UNLIMITED if rate is None else RateLimiter(rate)
