"""Webhook retry schedules: the pure arithmetic of when attempt N+1 happens.

The default follows the Standard Webhooks guidance (the schedule Svix documents): an
attempt at once, then retries after 5s, 5m, 30m, 2h, 5h, 10h and 10h — eight attempts
spread over about 27.6 hours. A webhook may give its own ``retry_schedule`` or ask for
exponential backoff instead (``max_attempts`` / ``max_backoff``, see ``backoff``, which
also holds the tenacity wait built on these steps: ``retry_wait``).
Each scheduled wait is stretched by up to 10% at random, so deliveries that failed
together do not all come back in the same second; a longer ``Retry-After`` wins.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["JITTER", "STANDARD_SCHEDULE", "schedule_delay"]

#: Seconds before retry 1, 2, … (the Standard Webhooks / Svix schedule).
STANDARD_SCHEDULE: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
#: Each scheduled wait is multiplied by a random factor in [1, 1 + JITTER].
JITTER = 0.1


def schedule_delay(retry: int, schedule: Sequence[float], *, rng: random.Random) -> float:
    """The wait before retry number ``retry`` (1-based); past the end, the last step."""
    if not schedule:
        raise ValueError("a retry schedule needs at least one step")
    step = schedule[min(max(retry, 1), len(schedule)) - 1]
    return step * rng.uniform(1.0, 1.0 + JITTER)
