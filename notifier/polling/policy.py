"""How long a room waits before its next poll: after a poll that worked, after one that failed.

Pure functions, tested with tables; the service applies them to each room's turn.

* Adaptive polling (``next_interval``): a quiet room backs off step by step to
  ``max_poll_interval``; its first new message brings it back to ``poll_interval``.
* Failures (``failure_delay``): the pause doubles with each failure in a row, up to
  MAX_ROOM_BACKOFF; a room Roomlio does not know waits the longest at once.
* Stable offsets (``phase``, ``slot_delay``): a successful poll's next one falls on the
  room's own place within its interval, fixed by a hash of the room's name (as Prometheus
  spreads its scrape targets), so rooms that share an interval poll spread evenly over it,
  not in lock-step, and a restart keeps every room's place.
* Ramp-up (``ramp_window``): rooms that start (a start, a reload, leases taken over) poll
  first at their place within a window long enough to stay within half the request budget.
* Edit scans (``edit_scan_due``): a scan runs at the poll nearest to its due time.
* Jitter (``jittered``): only ever earlier; used for failure pauses, which keep off the grid.
"""

from __future__ import annotations

import hashlib
import math
import random

from notifier.util.backoff import exponential_delay

__all__ = ["BACKOFF_FACTOR", "JITTER", "MAX_ROOM_BACKOFF", "QUIET_POLLS", "RAMP_SHARE",
           "budget_period", "edit_scan_due", "failure_delay", "jittered", "next_interval",
           "phase", "ramp_window", "slot_delay"]

#: Each poll that finds nothing new multiplies a room's interval by this.
BACKOFF_FACTOR = 2.0
#: Empty polls in a row before the back-off starts: a room with a message about every
#: poll_interval often finds one poll empty, and must not pay a doubled pause for it.
QUIET_POLLS = 2
#: How long a room that keeps failing waits at most between polls.
MAX_ROOM_BACKOFF = 300.0
#: The range a pause is multiplied by: below 1 only, so never later than planned.
JITTER = (0.9, 1.0)
#: The share of ``max_requests_per_second`` that rooms starting together may take with
#: their first polls: the rest is left to the rooms already polling.
RAMP_SHARE = 0.5


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


def phase(name: str) -> float:
    """A room's place within any of its intervals, in [0, 1): a hash of its name (pure).

    Not Python's ``hash()``, which is seeded afresh in each process: the place must stay
    where it was across restarts and on every instance of a cluster."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def slot_delay(name: str, interval: float, now: float) -> float:
    """Seconds from ``now`` (unix time) to room ``name``'s next place in ``interval`` (pure).

    The places are the times t with t ≡ phase(name) × interval (mod interval), counted from
    the Unix epoch, so they do not depend on when the process started. The next one lies in
    (0, interval]: never later than ``interval`` after ``now``, and a room whose poll ends
    on time (or late, but within its interval) keeps its place."""
    offset = phase(name) * interval
    slot = offset + (math.floor((now - offset) / interval) + 1) * interval
    return min(max(slot - now, 0.0), interval)


def ramp_window(rooms: int, base: float, ceiling: float, rate: float) -> float:
    """The window over which ``rooms`` starting together poll for the first time (pure).

    ``base`` (poll_interval) when there is no budget (``rate`` 0), or when the first polls
    fit into RAMP_SHARE of it; longer as needed to fit, but never longer than ``ceiling``
    (max_poll_interval), the longest a room may wait for a poll."""
    if rate <= 0:
        return base
    return min(max(ceiling, base), max(base, rooms / (rate * RAMP_SHARE)))


def budget_period(rooms: int, ceiling: float, rate: float) -> float | None:
    """How often each of ``rooms`` quiet rooms is polled when ``rate`` requests a second
    cannot poll each once per ``ceiling`` (max_poll_interval); None when it can (pure)."""
    if rate <= 0 or rooms / rate <= ceiling:
        return None
    return rooms / rate


def edit_scan_due(now: float, due: float, interval: float) -> bool:
    """Whether the poll at ``now`` should be an edit scan due at ``due`` (pure).

    The poll nearest to the due time takes it: this one unless the next, ``interval``
    later, would be nearer. A quiet room whose interval equals ``edit_scan_interval`` so
    scans at every poll, and a scan is never more than half an interval late."""
    return now >= due - interval / 2
