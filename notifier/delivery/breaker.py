"""A circuit breaker per webhook: a pure state machine with an injected clock, no I/O.

::

    closed ──(≥ min_attempts judged, ≥ threshold of them failed)──► open
    open ──(probe wait elapsed; one probe admitted)──► half_open
    half_open ──(probe succeeded)──► closed
    half_open ──(probe failed, or abandoned)──► open (a longer wait)

Judged attempts are those of the last ``period`` seconds, at most the last ``window``:
a few failures in a quiet webhook never reach ``min_attempts``, and failures from long
ago do not count. While it is open, deliveries wait instead of spending attempts on a
receiver that is down; only the probe reaches it.

The wait before a probe follows gRPC's connection backoff: 1 s, then ×1.6 per failed
probe, each wait jittered by ±20%, never longer than ``cool_down``. A blip is therefore
noticed over in about a second, while a receiver down for long sees one probe per
``cool_down``. A *spell* is one outage: it begins when the breaker opens from calm and
lasts while the breaker reopens within ``period`` of closing (the wait keeps growing, so
a flapping receiver is not probed every second). The first close of a spell reports when
its failures began (``Transition.recovered_since``), so the deliveries that failed in it
can be retried at once instead of on their retry schedule.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["PROBE_BASE", "PROBE_FACTOR", "PROBE_JITTER", "Admission", "Breaker",
           "BreakerSettings", "BreakerState", "Transition", "probe_wait", "shortest_wait"]

#: The first wait before a probe (seconds), as gRPC's connection backoff.
PROBE_BASE = 1.0
#: Each failed probe multiplies the wait by this.
PROBE_FACTOR = 1.6
#: Each wait is multiplied by a random factor in [1 - PROBE_JITTER, 1 + PROBE_JITTER].
PROBE_JITTER = 0.2


def probe_wait(step: int, cap: float, rng: random.Random) -> float:
    """The wait before the probe after ``step`` failed probes: jittered, at most ``cap``
    (a capped wait is jittered below the cap, so webhooks down together spread out)."""
    wait = PROBE_BASE * PROBE_FACTOR ** min(step, 64) * rng.uniform(1 - PROBE_JITTER,
                                                                    1 + PROBE_JITTER)
    return wait if wait <= cap else cap * rng.uniform(1 - PROBE_JITTER, 1.0)


def shortest_wait(cap: float) -> float:
    """The shortest wait ``probe_wait`` can give (a restored breaker waits this long)."""
    return min(cap, PROBE_BASE * (1 - PROBE_JITTER))


class BreakerState(StrEnum):
    """Where a webhook's breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Every attempt compares the state: a module global is read faster than an enum member
# (EnumType attribute lookup on 3.11).
_CLOSED, _HALF_OPEN = BreakerState.CLOSED, BreakerState.HALF_OPEN


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker opens and how long it stays open."""

    window: int = 20
    """At most this many recent attempts are judged; 0 turns the breaker off."""
    threshold: float = 0.7
    """The share of failures among them that opens it (0 < threshold <= 1)."""
    cool_down: float = 60.0
    """The longest wait before a probe (the probe backoff's cap)."""
    min_attempts: int = 10
    """Fewer judged attempts than this never open it (1 <= min_attempts <= window)."""
    period: float = 60.0
    """Only attempts of the last ``period`` seconds are judged."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The breaker's answer to "may an attempt go now?"."""

    go: bool
    probe: bool = False
    """This attempt is the half-open probe: its result decides the state."""
    wait: float | None = None
    """When not ``go``: seconds until asking again helps (None: until a transition)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, for logs and persistence."""

    before: BreakerState
    after: BreakerState
    reason: str
    recovered_since: float | None = None
    """On the first close of a spell: when its failures began (unix time)."""


class Breaker:
    """One webhook's breaker; every method takes the time from ``clock``."""

    def __init__(self, settings: BreakerSettings, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self._clock, self._rng = clock, rng or random.Random()
        self.state = BreakerState.CLOSED
        self.opened_at: float | None = None
        """When it last opened or reopened (None while closed)."""
        self.retry_at: float | None = None
        """When an open breaker admits its probe (None unless open)."""
        self.step = 0
        """Failed probes (and reopenings) in this spell: how long the next wait is."""
        self._results: deque[tuple[float, bool]] = deque(maxlen=max(settings.window, 1))
        self._failed_at: float | None = None
        """When the last failure was recorded (None: none since the last restore)."""
        self._probing = False
        self._since: float | None = None
        """When the current spell's failures began; None once its first close reported it."""
        self._closed_at: float | None = None

    def restore(self, state: BreakerState, opened_at: float | None,
                since: float | None = None) -> None:
        """Resume a persisted state (a half-open one resumes as open: its probe was lost).

        The probe is due the shortest wait after ``opened_at``: a restart never makes an
        open breaker wait longer than it would have (at worst it probes a little sooner).
        """
        self._results.clear()
        self._probing, self.step, self._closed_at = False, 0, None
        if state is _CLOSED or self.settings.window == 0:
            self.state, self.opened_at, self.retry_at, self._since = (
                BreakerState.CLOSED, None, None, None)
            return
        opened = opened_at if opened_at is not None else self._clock()
        self.state, self.opened_at = BreakerState.OPEN, opened
        self.retry_at = opened + shortest_wait(self.settings.cool_down)
        self._since = since if since is not None else opened - self.settings.period

    def admit(self) -> Admission:
        """Whether an attempt may go now; the first one after the wait is the probe."""
        if self.state is _CLOSED:
            return Admission(True)
        if self.state is _HALF_OPEN:
            return Admission(False, wait=None) if self._probing else self._probe()
        assert self.retry_at is not None
        now = self._clock()
        if now < self.retry_at:
            return Admission(False, wait=self.retry_at - now)
        self.state = BreakerState.HALF_OPEN
        return self._probe()

    def _probe(self) -> Admission:
        self._probing = True
        return Admission(True, probe=True)

    def would_admit(self) -> bool:
        """Whether ``admit`` would let an attempt go now (without changing anything)."""
        if self.state is _CLOSED:
            return True
        if self.state is _HALF_OPEN:
            return not self._probing
        return self.retry_at is not None and self._clock() >= self.retry_at

    def record(self, ok: bool, *, probe: bool = False) -> Transition | None:
        """Note an attempt's result; return the transition it caused, if any."""
        if self.state is _HALF_OPEN and probe:
            self._probing = False
            if ok:
                return self._close("the probe succeeded")
            self.step += 1
            return self._open("the probe failed")
        if self.state is not _CLOSED or self.settings.window == 0:
            return None  # e.g. attempts already in flight when it opened: they change nothing
        now = self._clock()
        self._results.append((now, ok))
        if ok and (self._failed_at is None or self._failed_at <= now - self.settings.period):
            return None  # no failure is judged: a success alone never opens it (threshold > 0)
        if not ok:
            self._failed_at = now
        judged = [(at, good) for at, good in self._results if at > now - self.settings.period]
        failed = [at for at, good in judged if not good]
        if len(judged) < self.settings.min_attempts:
            return None
        if len(failed) < self.settings.threshold * len(judged):
            return None
        self._begin_spell(now, failed[0])
        return self._open(f"{len(failed)} of {len(judged)} attempts in the last "
                          f"{self.settings.period:g}s failed")

    def _begin_spell(self, now: float, first_failure: float) -> None:
        """Opening from closed: a new spell after a calm ``period``, else the same one."""
        closed_at = self._closed_at
        if closed_at is None or now - closed_at >= self.settings.period:
            self.step, self._since = 0, first_failure
        else:  # flapping: reopened soon after closing, so wait longer than last time
            self.step += 1

    def abandon_probe(self) -> Transition | None:
        """The probe ended without a result (cancelled): open again, probe at once."""
        if self.state is not _HALF_OPEN:
            return None
        self._probing = False
        transition = self._open("the probe was abandoned")
        self.retry_at = self._clock()
        return transition

    def _open(self, reason: str) -> Transition:
        before, self.state = self.state, BreakerState.OPEN
        now = self._clock()
        self.opened_at = now
        self.retry_at = now + probe_wait(self.step, self.settings.cool_down, self._rng)
        self._results.clear()
        return Transition(before, self.state, reason)

    def _close(self, reason: str) -> Transition:
        before, self.state = self.state, BreakerState.CLOSED
        since, self._since = self._since, None  # reported once per spell
        self.opened_at = self.retry_at = None
        self._closed_at = self._clock()
        self._results.clear()
        return Transition(before, self.state, reason, recovered_since=since)
