"""Each webhook's health: its circuit breaker, its failure streak and auto-disable.

The async shell around the pure ``Breaker``: attempts ``admit`` themselves (waiting, not
spending attempts, while the breaker is open), ``record`` their result, and the state is
saved to the store on every change so ``notifier status`` can show it and a restart
resumes it. When the breaker closes after an outage, the retries of deliveries that failed
in it stop waiting (``retry_pause``): the backlog drains at once, not on the retry
schedule. A webhook failing without a single success for ``disable_after``, or
answering ``410 Gone``, is disabled: its deliveries stay in the outbox, unsent, until
``notifier webhook enable NAME`` (seen through ``sync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace

from notifier.config import Webhook
from notifier.delivery.breaker import Breaker, BreakerSettings, BreakerState, Transition
from notifier.errors import StoreError, WebhookDisabledError
from notifier.store import Store, WebhookState

__all__ = ["GONE", "WebhookHealth"]

log = logging.getLogger("notifier.delivery")

#: The status that disables a webhook at once: the receiver says it is gone for good.
GONE = 410
#: Compared at every attempt: a module global is read faster than an enum member.
_CLOSED = BreakerState.CLOSED
#: A healthy webhook's last success is saved at most this often (seconds).
SUCCESS_SAVE_INTERVAL = 60.0


class WebhookHealth:
    """Breaker, failure streak and disablement of one webhook."""

    def __init__(self, webhook: Webhook, store: Store, *,
                 clock: Callable[[], float] = time.time,
                 on_disabled: Callable[[WebhookState], Awaitable[None]] | None = None,
                 on_recovered: Callable[[str], None] | None = None) -> None:
        self.webhook = webhook
        self._store, self._clock, self._on_disabled = store, clock, on_disabled
        self._on_recovered = on_recovered
        self.breaker = Breaker(BreakerSettings(
            webhook.breaker_window, webhook.breaker_threshold, webhook.breaker_cooldown,
            webhook.breaker_min_attempts, webhook.breaker_period), clock=clock)
        self.state = WebhookState(webhook.name)
        self._changed = asyncio.Event()
        self._recovered = asyncio.Event()
        """Set (and replaced) when the breaker closes after an outage."""
        self._recovered_since = float("inf")
        """When the failures of the last outage the breaker recovered from began."""
        self._saved_success = 0.0
        self._success_at: float | None = None
        """A steady success noted but not yet in ``state`` (see ``record``)."""

    @property
    def disabled(self) -> bool:
        """Whether deliveries to this webhook are held in the outbox."""
        return self.state.disabled

    def restore(self, saved: WebhookState | None) -> None:
        """Resume the state a previous run saved."""
        if saved is not None:
            self.state = saved
            self.breaker.restore(BreakerState(saved.breaker), saved.opened_at,
                                 saved.failing_since)

    def claimable(self) -> bool:
        """Whether the dispatcher should claim deliveries for this webhook now."""
        return not self.disabled and self.breaker.would_admit()

    def wake_at(self) -> float | None:
        """When an open breaker will admit its probe (for the dispatcher's sleep)."""
        return None if self.disabled else self.breaker.retry_at

    async def admit(self) -> bool:
        """Wait until an attempt may go; True if it is the breaker's probe.

        Raises WebhookDisabledError when the webhook is (or becomes) disabled.
        """
        while True:
            if self.disabled:
                raise WebhookDisabledError(f"webhook {self.webhook.name} is disabled")
            admission = self.breaker.admit()
            if admission.go:
                return admission.probe
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), admission.wait)

    def still_admits(self, probe: bool) -> bool:
        """Whether an attempt admitted earlier may go now that it has a slot: the probe
        always, others only while the breaker is closed (and the webhook enabled)."""
        return probe or self.admit_now()

    async def retry_pause(self, seconds: float) -> None:
        """Wait ``seconds`` before retrying a delivery that has just failed; cut short
        when the breaker closes after the outage this failure belonged to."""
        failed_at = self._clock()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            recovered = self._recovered
            try:
                await asyncio.wait_for(recovered.wait(), left)
            except TimeoutError:
                return
            if self._recovered_since <= failed_at:
                return

    def admit_now(self) -> bool:
        """Whether an attempt may go at once as an ordinary one (breaker closed, webhook
        enabled); else ``admit`` decides, waiting, probing or raising."""
        return self.breaker.state is _CLOSED and not self.state.disabled

    async def record(self, ok: bool, status: int | None, *, probe: bool) -> None:
        """Note one attempt's result: move the breaker, the streak, maybe disable."""
        now = self._clock()
        transition = self.breaker.record(ok, probe=probe)
        if not self._steady(ok, transition, now):
            await self._recorded(ok, status, transition, now)

    def record_success(self, probe: bool) -> Coroutine[None, None, None] | None:
        """``record(True, None, probe=probe)``, done at once for a steady success (None);
        else the rest of it, to be awaited."""
        now = self._clock()
        transition = self.breaker.record(True, probe=probe)
        if self._steady(True, transition, now):
            return None
        return self._recorded(True, None, transition, now)

    def _steady(self, ok: bool, transition: Transition | None, now: float) -> bool:
        if (ok and transition is None and self.state.failing_since is None
                and now - self._saved_success < SUCCESS_SAVE_INTERVAL):
            # a steady success changes nothing to save: noted, not a new WebhookState
            # per delivery (dataclasses.replace); folded in by ``_recorded`` at the next
            # other result (every save follows it)
            self._success_at = now
            return True
        return False

    async def _recorded(self, ok: bool, status: int | None, transition: Transition | None,
                        now: float) -> None:
        """What ``record`` does for a result that is not a steady success."""
        self._fold_success()
        before = self.state
        if ok:
            self.state = replace(before, failing_since=None, last_success_at=now)
        elif before.failing_since is None:
            self.state = replace(before, failing_since=now)
        reason = None if ok or self.disabled else self._disable_reason(status, now)
        if reason is not None:
            await self.disable(reason)  # saves the transition too
        elif transition is not None or self._worth_saving(before, now):
            await self._save()
        if transition is not None:  # logged once saved: what the log says survives a crash
            self._log(transition)

    def abandon(self, probe: bool) -> None:
        """An admitted attempt ended without a result (cancelled)."""
        if probe and (transition := self.breaker.abandon_probe()) is not None:
            self._log(transition)

    async def disable(self, reason: str) -> None:
        """Hold every delivery of this webhook; notify the ops webhook."""
        self.state = replace(self.state, disabled_at=self._clock(), disabled_reason=reason)
        log.error("webhook %s: disabled (%s); its deliveries are kept in the outbox; "
                  "turn it back on with: notifier webhook enable %s",
                  self.webhook.name, reason, self.webhook.name)
        await self._save()
        if self._on_disabled is not None:
            await self._on_disabled(self.state)

    async def sync(self, saved: WebhookState | None) -> None:
        """Adopt an enable made by ``notifier webhook enable`` in another process."""
        if self.disabled and (saved is None or not saved.disabled):
            log.info("webhook %s: enabled again; sending its held deliveries",
                     self.webhook.name)
            self.state = saved or WebhookState(self.webhook.name)
            self.breaker.restore(BreakerState(self.state.breaker), self.state.opened_at)
            self._changed.set()

    def _disable_reason(self, status: int | None, now: float) -> str | None:
        if status == GONE:
            return "the receiver answered 410 Gone"
        after, since = self.webhook.disable_after, self.state.failing_since
        if after > 0 and since is not None and now - since >= after:
            return f"no successful delivery for {_span(now - since)}"
        return None

    def _worth_saving(self, before: WebhookState, now: float) -> bool:
        if (before.failing_since is None) != (self.state.failing_since is None):
            return True
        return (self.state.last_success_at is not None
                and now - self._saved_success >= SUCCESS_SAVE_INTERVAL)

    def _log(self, transition: Transition) -> None:
        retry = self.breaker.retry_at
        when = f"; one probe in {retry - self._clock():.1f}s" if retry is not None else ""
        log.warning("webhook %s: circuit %s -> %s (%s)%s", self.webhook.name,
                    transition.before, transition.after, transition.reason, when)
        self._changed.set()
        if transition.recovered_since is not None:
            self._recover(transition.recovered_since)

    def _recover(self, since: float) -> None:
        """Wake the retries of deliveries that failed since ``since``; tell the sender."""
        self._recovered_since = since
        woken, self._recovered = self._recovered, asyncio.Event()
        woken.set()
        if self._on_recovered is not None:
            self._on_recovered(self.webhook.name)

    def _fold_success(self) -> None:
        """Put the last steady success noted by ``record`` into ``state``."""
        if self._success_at is not None:
            self.state = replace(self.state, last_success_at=self._success_at)
            self._success_at = None

    async def _save(self) -> None:
        b = self.breaker
        self.state = replace(self.state, breaker=str(b.state), opened_at=b.opened_at)
        if self.state.last_success_at is not None:
            self._saved_success = self._clock()
        try:
            # shielded: a shutdown that cancels this task must not drop the last transition
            await asyncio.shield(self._store.save_webhook_state(self.state))
        except StoreError as exc:  # advisory: kept in memory, saved with the next change
            log.warning("webhook %s: cannot save its health: %s", self.webhook.name, exc)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"
