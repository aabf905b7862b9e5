"""The health of every webhook of a sender (notifier.delivery.health's WebhookHealth),
kept in step with the store: saved states loaded at the start, enables made by
``notifier webhook enable`` in another process adopted, the ops webhook told when one
is disabled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from notifier.config import Webhook
from notifier.delivery.health import WebhookHealth
from notifier.delivery.operator_events import disabled_delivery
from notifier.errors import StoreError
from notifier.events import Delivery
from notifier.store import Store, WebhookState

__all__ = ["HealthBoard"]

log = logging.getLogger("notifier.delivery")


class HealthBoard:
    """The health of every webhook of a sender, kept in step with the store."""

    #: How often (seconds) saved states are re-read, to see ``notifier webhook enable``.
    refresh_interval = 1.0

    def __init__(self, webhooks: Mapping[str, Webhook], store: Store, *,
                 clock: Callable[[], float] = time.time, ops_webhook: str | None = None,
                 on_enqueued: Callable[[list[Delivery]], None] | None = None,
                 on_recovered: Callable[[], None] | None = None) -> None:
        self._store, self._clock = store, clock
        self._ops_webhook, self._on_enqueued = ops_webhook, on_enqueued
        self._on_recovered = on_recovered
        self._recovered: set[str] = set()
        self._health = {name: self._new(w) for name, w in webhooks.items()}
        self._loaded = False
        self._refreshed = -float("inf")

    def __getitem__(self, webhook: str) -> WebhookHealth:
        return self._health[webhook]

    def track(self, webhooks: Mapping[str, Webhook]) -> None:
        """Follow a reloaded config: webhooks new to it start healthy (the next refresh
        adopts any saved state); the others keep theirs."""
        for name, w in webhooks.items():
            if name not in self._health:
                self._health[name] = self._new(w)

    def _new(self, webhook: Webhook) -> WebhookHealth:
        return WebhookHealth(webhook, self._store, clock=self._clock,
                             on_disabled=self._notify, on_recovered=self._recover)

    def _recover(self, webhook: str) -> None:
        self._recovered.add(webhook)
        if self._on_recovered is not None:
            self._on_recovered()

    def take_recovered(self) -> set[str]:
        """Webhooks whose breaker closed after an outage since the last call: their
        deliveries that failed in it, released to the outbox, are to be claimed early."""
        recovered, self._recovered = self._recovered, set()
        return recovered

    async def refresh(self) -> None:
        """Load saved states once, then adopt enables made elsewhere (rate-limited)."""
        if time.monotonic() - self._refreshed < self.refresh_interval:
            return
        self._refreshed = time.monotonic()
        states = await self._store.webhook_states()
        for name, health in self._health.items():
            if self._loaded:
                await health.sync(states.get(name))
            else:
                health.restore(states.get(name))
        self._loaded = True

    def claimable(self, webhook: str) -> bool:
        """Whether deliveries for ``webhook`` should be claimed now."""
        health = self._health.get(webhook)
        return health is None or health.claimable()

    def is_disabled(self, webhook: str) -> bool:
        """Whether ``webhook`` is disabled (its deliveries go back to the outbox)."""
        health = self._health.get(webhook)
        return health is not None and health.disabled

    def cap_delay(self, delay: float) -> float:
        """``delay``, shortened to wake for a probe, and to at most ``refresh_interval`` so
        deliveries replayed and webhooks enabled by another process are seen quickly."""
        now = self._clock()
        for health in self._health.values():
            wake = health.wake_at()
            if wake is not None:
                delay = min(delay, max(0.05, wake - now))
        return min(delay, self.refresh_interval)

    async def _notify(self, state: WebhookState) -> None:
        ops = self._ops_webhook
        if ops is None or ops == state.webhook or self.is_disabled(ops):
            return
        try:
            added = await self._store.commit(None, [disabled_delivery(state, ops)])
        except StoreError as exc:
            log.error("cannot enqueue webhook.disabled for %s to %s: %s", state.webhook, ops, exc)
            return
        if added and self._on_enqueued is not None:
            self._on_enqueued(added)
