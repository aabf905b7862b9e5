"""Operational events: what the notifier tells ``ops_webhook`` about itself.

``webhook.disabled`` is sent when a webhook is disabled (410 Gone, or no success for
``disable_after``). It goes through the outbox like any event, so it survives a crash;
its ``data`` is ``{"webhook", "reason", "disabledAt"}``.
"""

from __future__ import annotations

from notifier.events import WEBHOOK_DISABLED, Delivery, Event, event_id
from notifier.store import WebhookState
from notifier.util.time import format_time

__all__ = ["disabled_delivery"]


def disabled_delivery(state: WebhookState, ops_webhook: str) -> Delivery:
    """The ``webhook.disabled`` delivery for ``state`` (a disabled webhook) to ``ops_webhook``."""
    at = state.disabled_at if state.disabled_at is not None else 0.0
    data = {"webhook": state.webhook, "reason": state.disabled_reason,
            "disabledAt": format_time(at)}
    event = Event(event_id(f"{WEBHOOK_DISABLED}/{state.webhook}", format_time(at)),
                  WEBHOOK_DISABLED, "", data, (), at)
    return Delivery.for_webhook(event, ops_webhook, ())
