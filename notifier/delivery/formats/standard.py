"""The ``standard`` format: the generic JSON event, signed as Standard Webhooks."""

from __future__ import annotations

from typing import Any

from notifier.config import Webhook
from notifier.delivery.formats.base import Body, Format
from notifier.events import Delivery
from notifier.util.json import dumps_bytes
from notifier.util.time import format_time

__all__ = ["FORMAT", "data_of", "standard"]


def data_of(delivery: Delivery) -> dict[str, Any]:
    """The event's ``data``: ``{"rules", "message"}`` for a message event, the operational
    event's own fields for one sent to ``ops_webhook`` (``cloudevents`` sends the same)."""
    event = delivery.event
    if event.kind.startswith("message."):
        return {"rules": list(delivery.rules), "message": event.message}
    return dict(event.message)


def standard(delivery: Delivery) -> bytes:
    """The generic event: ``{"type", "timestamp", "data": {"rules", "message"}}``.

    The body depends only on the delivery, so every retry sends the same bytes.
    """
    event = delivery.event
    document = {
        "type": event.kind,
        "timestamp": format_time(event.detected_at),
        "data": data_of(delivery),
    }
    return dumps_bytes(document)


def _build(_webhook: Webhook) -> Body:
    return standard


FORMAT = Format("standard", _build)
