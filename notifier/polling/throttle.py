"""The API key's request rate, learned from Roomlio's 429s: one throttle per process.

Roomlio limits each API key, not each room, and does not publish the limit. So a 429 is
a signal for every room of the key: the throttle pauses every request until the 429's
``Retry-After`` has passed (DEFAULT_PAUSE when it gives none), and adapts one request
rate for the whole process, as TCP adapts its window (additive increase, multiplicative
decrease):

* **Decrease.** A 429 cuts the rate to BETA times what it was (the first one: BETA times
  the rate Roomlio accepted over the last WINDOW seconds). Only a 429 for a request sent
  after the last cut cuts again: the refusals of requests already under way when the
  first one came are one signal, not many. Fewer than MIN_EVIDENCE requests in WINDOW
  seconds are no evidence of going too fast: such a 429 only pauses.
* **Increase.** While the rate holds requests back (demand is above it) and Roomlio
  accepts them, it grows by ``increase(rate)`` a second (2%, at least one request a
  second). When demand is below the rate it stays put: a rate never tried is not learned.
* **Hard cap.** ``roomlio.max_requests_per_second`` bounds the learned rate (and the
  scheduler's budget bucket bounds the requests themselves, whatever is learned).

The pacing is the one TokenBucket (notifier.util.pacing) at the learned rate, a burst of
one; before the first 429 nothing is learned and requests are not paced. Once settled the
rate climbs to just above the limit, draws one round of refusals, is cut, and climbs
again: refusals are a few per cycle. Two WARNING lines tell an episode: its first 429,
and RECOVERY seconds without one; never a line per 429.
Several instances sharing a key each run their own throttle, and settle together near
the limit (not necessarily in equal shares: docs/scale.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from notifier.util.pacing import TokenBucket

__all__ = ["BETA", "DEFAULT_PAUSE", "MIN_RATE", "RECOVERY", "KeyThrottle", "Tally", "increase"]

log = logging.getLogger("notifier.roomlio")

#: What a 429 leaves of the rate (TCP Reno halves; CUBIC keeps 0.7, closer to the limit).
BETA = 0.7
#: The lowest rate learned (requests a second): a limit below it still pauses on 429s.
MIN_RATE = 1.0
#: Requests sent over the last WINDOW seconds below which a 429 only pauses: so few say
#: the key is spent (by another process, say), not that this one goes too fast.
MIN_EVIDENCE = 10
#: The pause of every room after a 429 that gives no Retry-After.
DEFAULT_PAUSE = 1.0
#: Seconds without a 429 after which an episode of refusals is over (logged once).
RECOVERY = 60.0
#: Seconds of accepted answers whose rate the first cut starts from.
WINDOW = 5
#: A request that waited for its turn less than this long ago counts as held back.
PRESSED = 1.0
#: Seconds of per-second counts kept for the status page.
HISTORY = 300


def increase(rate: float) -> float:
    """Requests a second added to ``rate`` per second of accepted, held-back requests."""
    return max(1.0, 0.02 * rate)


class Tally:
    """Requests, refusals and accepted answers per second over the last HISTORY seconds:
    fixed arrays, so memory stays the same however many requests are made."""

    def __init__(self) -> None:
        self._stamp = [-1] * HISTORY
        self._counts = [[0, 0, 0] for _ in range(HISTORY)]
        self.totals = [0, 0, 0]
        """Requests, refusals, accepted answers since the start."""

    def add(self, now: float, kind: int) -> None:
        """Count one of ``kind`` (0 request, 1 refusal, 2 accepted) at ``now``."""
        second = int(now)
        slot = second % HISTORY
        if self._stamp[slot] != second:
            self._stamp[slot] = second
            self._counts[slot] = [0, 0, 0]
        self._counts[slot][kind] += 1
        self.totals[kind] += 1

    def count(self, now: float, kind: int, seconds: int) -> int:
        """How many of ``kind`` in the last ``seconds`` seconds, ``now``'s included."""
        last = int(now)
        return sum(self._counts[s % HISTORY][kind] for s in range(last - seconds + 1, last + 1)
                   if self._stamp[s % HISTORY] == s)


class KeyThrottle:
    """Paces and pauses every request of one API key; learns its rate from 429s."""

    def __init__(self, cap: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.cap = cap or None
        """The configured hard cap (``max_requests_per_second``), None: none."""
        self.rate: float | None = None
        """The learned rate in requests a second; None until the first 429."""
        self.limited = False
        """Within an episode of refusals (from a first cut until RECOVERY s without one)."""
        self.tally = Tally()
        self._clock, self._sleep = clock, sleep
        self._bucket = TokenBucket(1.0, clock=clock)
        self._queue = asyncio.Lock()  # FIFO: waiters are woken in the order they came
        self._epoch = 0
        """Counts pauses: a request that slept through one takes a fresh turn."""
        self._started = clock()
        self._last_cut = self._last_refusal = self._pressed_at = float("-inf")
        self._grown_at = self._started

    def paused_for(self, now: float | None = None) -> float:
        """Seconds until the current pause (after a 429) ends; 0 when none."""
        return self._bucket.paused_for(self._clock() if now is None else now)

    def reserve(self, now: float) -> float:
        """Take the next turn; the seconds to wait for it (pure, ``now`` given)."""
        if self.rate is None:
            return self._bucket.paused_for(now)
        wait = self._bucket.reserve(now)
        if wait > self._bucket.paused_for(now):
            self._pressed_at = now  # the rate, not a pause, held this request back
        return wait

    async def acquire(self) -> float:
        """Wait for this request's turn; count it; return when it is sent (clock time).

        Requests queue first in, first out, and only the head holds a turn: each turn is
        taken at the rate in force when the one before it went, so a rate that grows
        speeds up the whole queue. A head that slept through a new pause takes a turn
        again, after it."""
        async with self._queue:
            while True:
                epoch = self._epoch
                wait = self.reserve(self._clock())
                if wait <= 0:
                    break
                await self._sleep(wait)
                if epoch == self._epoch:
                    break
        now = self._clock()
        self.tally.add(now, 0)
        return now

    def answered(self, status: int, retry_after: float | None, sent_at: float) -> None:
        """Roomlio answered the request sent at ``sent_at`` with ``status``."""
        now = self._clock()
        if status == 429:
            self._refused(now, retry_after, sent_at)
        else:
            self._accepted(now)

    def _refused(self, now: float, retry_after: float | None, sent_at: float) -> None:
        self.tally.add(now, 1)
        self._last_refusal = now
        pause = DEFAULT_PAUSE if retry_after is None else retry_after
        if pause > self._bucket.paused_for(now):
            # Every turn handed out so far is taken again after the pause (acquire), so
            # a fresh bucket forgets them instead of queueing the new turns behind them.
            # It starts at the pause's end, with the one turn it holds due then.
            self._bucket = TokenBucket(self.rate or 1.0, now + pause, clock=self._clock)
            self._epoch += 1
        was = self.rate
        if self._cuts(now, sent_at):
            base = was if was is not None else self._first_base(now)
            self._set_rate(max(MIN_RATE, BETA * base), now)
            self._last_cut = now
            log.debug("Roomlio 429: request rate cut to %.1f/s", self.rate)
        if not self.limited:
            self.limited = True
            before = "unpaced" if was is None else f"{was:.1f}/s"
            paced = (f"then requests are paced at {self.rate:.1f}/s (learned from the "
                     f"refusals; was {before})" if self.rate is not None
                     else "too few requests yet to learn a rate from")
            log.warning("Roomlio refuses requests (HTTP 429): its limit for this API key is "
                        "reached; every room waits %gs; %s", pause, paced)

    def _cuts(self, now: float, sent_at: float) -> bool:
        """Whether a 429 for the request sent at ``sent_at`` cuts the rate: not when the
        request was under way before the last cut (that cut answered it already), nor
        when too few requests went out to say this process goes too fast (the key is
        spent, by another process say: the pause is the answer)."""
        return (sent_at >= self._last_cut
                and self.tally.count(now, 0, WINDOW) >= MIN_EVIDENCE)

    def _accepted(self, now: float) -> None:
        self.tally.add(now, 2)
        if self.rate is not None and now - self._pressed_at <= PRESSED:
            grown = self.rate + increase(self.rate) * min(1.0, now - self._grown_at)
            self._set_rate(grown, now)
        self._grown_at = now
        self.check_recovery(now)

    def check_recovery(self, now: float) -> None:
        """End the episode of refusals (one line) once RECOVERY seconds passed without one."""
        if self.limited and now - self._last_refusal >= RECOVERY:
            self.limited = False
            # WARNING, as the line it ends: who sees one sees the other
            log.warning("Roomlio has accepted every request for %gs: requests are paced at "
                        "%.1f/s, which grows while demand is above it", RECOVERY,
                        self.rate or 0)

    def _set_rate(self, rate: float, now: float) -> None:
        self.rate = min(rate, self.cap) if self.cap is not None else rate
        self._bucket.set_rate(self.rate, now)

    def _per_second(self, now: float, kind: int, seconds: int) -> float:
        """Of ``kind`` a second over the last ``seconds`` (or since the start, if shorter;
        at least one second)."""
        span = max(1.0, min(float(seconds), now - self._started))
        return self.tally.count(now, kind, seconds) / span

    def _first_base(self, now: float) -> float:
        """What the first cut cuts: the rate Roomlio accepted over the last WINDOW
        seconds, or (none accepted) the rate sent."""
        accepted = self._per_second(now, 2, WINDOW)
        return accepted if accepted > 0 else self._per_second(now, 0, WINDOW)

    def usage(self, now: float | None = None) -> dict[str, Any]:
        """What the status page and the metrics show: the learned rate, the cap, the
        pause, totals, and requests and refusals a second over the last minutes."""
        now = self._clock() if now is None else now
        self.check_recovery(now)
        windows = [{"seconds": seconds, "requests_per_s": self._per_second(now, 0, seconds),
                    "refusals_per_s": self._per_second(now, 1, seconds)}
                   for seconds in (10, 60, HISTORY)]
        requests, refusals, _ = self.tally.totals
        return {"learned_rate": self.rate, "cap": self.cap, "limited": self.limited,
                "paused_for": self.paused_for(now), "requests_total": requests,
                "refusals_total": refusals, "windows": windows}
