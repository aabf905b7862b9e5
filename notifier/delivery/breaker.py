"""A circuit breaker per webhook: a pure state machine with an injected clock, no I/O.

::

    closed ──(≥ threshold of the last `window` attempts failed)──► open
    open ──(cool_down elapsed; one probe admitted)──► half_open
    half_open ──(probe succeeded)──► closed
    half_open ──(probe failed, or abandoned)──► open (cool-down starts again)

While it is open, deliveries wait instead of spending attempts on a receiver that is
down; only the probe reaches it. Results recorded while open (attempts that were already
in flight when it opened) change nothing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Admission", "Breaker", "BreakerSettings", "BreakerState", "Transition"]


class BreakerState(StrEnum):
    """Where a webhook's breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker opens and how long it stays open."""

    window: int = 20
    """How many recent attempts are judged; 0 turns the breaker off."""
    threshold: float = 0.7
    """The share of failures among them that opens it (0 < threshold <= 1)."""
    cool_down: float = 60.0
    """Seconds an open breaker waits before letting one probe through."""


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


class Breaker:
    """One webhook's breaker; every method takes the time from ``clock``."""

    def __init__(self, settings: BreakerSettings, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.opened_at: float | None = None
        self._results: deque[bool] = deque(maxlen=max(settings.window, 1))
        self._probing = False

    @property
    def retry_at(self) -> float | None:
        """When an open breaker admits its probe (None unless open)."""
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return None
        return self.opened_at + self.settings.cool_down

    def restore(self, state: BreakerState, opened_at: float | None) -> None:
        """Resume a persisted state (a half-open one resumes as open: its probe was lost)."""
        if state is BreakerState.CLOSED or self.settings.window == 0:
            self.state, self.opened_at = BreakerState.CLOSED, None
        else:
            self.state, self.opened_at = BreakerState.OPEN, opened_at or self._clock()

    def admit(self) -> Admission:
        """Whether an attempt may go now; the first one after the cool-down is the probe."""
        if self.state is BreakerState.CLOSED:
            return Admission(True)
        if self.state is BreakerState.HALF_OPEN:
            return Admission(False, wait=None) if self._probing else self._probe()
        retry_at = self.retry_at
        assert retry_at is not None
        now = self._clock()
        if now < retry_at:
            return Admission(False, wait=retry_at - now)
        self.state = BreakerState.HALF_OPEN
        return self._probe()

    def _probe(self) -> Admission:
        self._probing = True
        return Admission(True, probe=True)

    def would_admit(self) -> bool:
        """Whether ``admit`` would let an attempt go now (without changing anything)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN:
            return not self._probing
        retry_at = self.retry_at
        return retry_at is not None and self._clock() >= retry_at

    def record(self, ok: bool, *, probe: bool = False) -> Transition | None:
        """Note an attempt's result; return the transition it caused, if any."""
        if self.state is BreakerState.HALF_OPEN and probe:
            self._probing = False
            if ok:
                return self._close("the probe succeeded")
            return self._open("the probe failed")
        if self.state is not BreakerState.CLOSED or self.settings.window == 0:
            return None
        self._results.append(ok)
        failures = self._results.count(False)
        window = self.settings.window
        if len(self._results) >= window and failures >= self.settings.threshold * window:
            return self._open(f"{failures} of the last {window} attempts failed")
        return None

    def abandon_probe(self) -> Transition | None:
        """The probe ended without a result (cancelled): open again, probe at once."""
        if self.state is not BreakerState.HALF_OPEN:
            return None
        self._probing = False
        transition = self._open("the probe was abandoned")
        self.opened_at = self._clock() - self.settings.cool_down
        return transition

    def _open(self, reason: str) -> Transition:
        before, self.state = self.state, BreakerState.OPEN
        self.opened_at = self._clock()
        self._results.clear()
        return Transition(before, self.state, reason)

    def _close(self, reason: str) -> Transition:
        before, self.state = self.state, BreakerState.CLOSED
        self.opened_at = None
        self._results.clear()
        return Transition(before, self.state, reason)
