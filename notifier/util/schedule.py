"""Webhook retry schedules: the pure arithmetic of when attempt N+1 happens.

The default follows the Standard Webhooks guidance (the schedule Svix documents): an
attempt at once, then retries after 5s, 5m, 30m, 2h, 5h, 10h and 10h — eight attempts
spread over about 27.6 hours. A webhook may give its own ``retry_schedule`` or ask for
exponential backoff instead (``max_attempts`` / ``max_backoff``, see ``backoff``).
Each scheduled wait is stretched by up to 10% at random, so deliveries that failed
together do not all come back in the same second; a longer ``Retry-After`` wins.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tenacity.wait import wait_base

from notifier.util.backoff import RetryAfterAwareWait, RetryAfterWait

__all__ = ["JITTER", "STANDARD_SCHEDULE", "ScheduleWait", "retry_wait", "schedule_delay"]

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
