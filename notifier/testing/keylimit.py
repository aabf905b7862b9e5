"""The emulator's rate limit: a token bucket per API key, as Roomlio limits each key.

A request that finds its key's bucket empty is refused with 429 and a ``Retry-After``,
and costs no token (a refused request is not served). The bucket starts full: a client
may burst up to ``burst`` requests, then gets ``rate`` a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["KeyLimit", "KeyLimiter"]


@dataclass(frozen=True, slots=True)
class KeyLimit:
    """At most ``rate`` requests a second per API key, in bursts of up to ``burst``
    (default: one second's worth); refusals carry ``Retry-After: retry_after`` (None: no
    header)."""

    rate: float
    burst: float | None = None
    retry_after: float | None = 1.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 requests a second, not {self.rate}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"burst must be >= 1 request, not {self.burst}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, not {self.retry_after}")

    @property
    def capacity(self) -> float:
        """The longest burst: ``burst``, or one second's worth (at least one request)."""
        return self.burst if self.burst is not None else max(1.0, self.rate)


class KeyLimiter:
    """Admits or refuses each request of a key under a KeyLimit (None: admits all)."""

    def __init__(self, limit: KeyLimit | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._limit = limit
        self._buckets: dict[str, tuple[float, float]] = {}
        """Per key: tokens left and when they were counted."""

    @property
    def limit(self) -> KeyLimit | None:
        """The limit in force (None: none)."""
        return self._limit

    def set(self, limit: KeyLimit | None) -> None:
        """Put ``limit`` in force; every key starts again with a full bucket."""
        self._limit = limit
        self._buckets.clear()

    def admit(self, key: str) -> bool:
        """Take a token of ``key``'s bucket if there is one; False: refuse the request."""
        limit = self._limit
        if limit is None:
            return True
        now = self._clock()
        tokens, counted = self._buckets.get(key, (limit.capacity, now))
        tokens = min(limit.capacity, tokens + (now - counted) * limit.rate)
        admitted = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if admitted else tokens, now)
        return admitted
