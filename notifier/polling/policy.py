"""How long a room waits before its next poll: after a poll that worked, after one that failed.

Pure functions, tested with tables; the service applies them to each room's turn.

* Adaptive polling (``next_interval``): a quiet room backs off step by step to
  ``max_poll_interval``; its first new message brings it back to ``poll_interval``.
* Failures (``failure_delay``): the pause doubles with each failure in a row, up to
  MAX_ROOM_BACKOFF; a room Roomlio does not know waits the longest at once.
* Jitter (``jittered``): only ever earlier, so a message waits at most ``poll_interval``
  before it is seen, and many rooms do not poll in lock-step.
"""

from __future__ import annotations

import random

from notifier.util.backoff import exponential_delay

__all__ = ["BACKOFF_FACTOR", "JITTER", "MAX_ROOM_BACKOFF", "QUIET_POLLS", "failure_delay",
           "jittered", "next_interval"]

#: Each poll that finds nothing new multiplies a room's interval by this.
BACKOFF_FACTOR = 2.0
#: Empty polls in a row before the back-off starts: a room with a message about every
#: poll_interval often finds one poll empty, and must not pay a doubled pause for it.
QUIET_POLLS = 2
#: How long a room that keeps failing waits at most between polls.
MAX_ROOM_BACKOFF = 300.0
#: The range a pause is multiplied by: below 1 only, so never later than planned.
JITTER = (0.9, 1.0)


def next_interval(current: float, quiet: int, base: float, ceiling: float) -> float:
    """The pause before a room's next poll, after ``quiet`` empty polls in a row (pure).

    A poll that read something (``quiet`` 0) resets the pause to ``base``; from the
    QUIET_POLLS-th empty poll in a row on, each multiplies it by BACKOFF_FACTOR, up to
    ``ceiling`` (never below ``base``)."""
    if quiet < QUIET_POLLS:
        return base
    return min(max(ceiling, base), max(current, base) * BACKOFF_FACTOR)


def failure_delay(failures: int, base: float, *, room_unknown: bool = False) -> float:
    """The pause after the ``failures``-th failed poll in a row (pure).

    ``base`` doubled per failure (the exponent stops at 10), at most MAX_ROOM_BACKOFF; a
    room Roomlio does not know (``room_unknown``) waits MAX_ROOM_BACKOFF at once: it is a
    config mistake or a deleted room, which a quick retry does not mend."""
    if room_unknown:
        return MAX_ROOM_BACKOFF
    return exponential_delay(min(failures, 10) + 1, base=base, cap=MAX_ROOM_BACKOFF)


def jittered(delay: float, rng: random.Random) -> float:
    """``delay`` made a little earlier at random (within JITTER)."""
    return delay * rng.uniform(*JITTER)
