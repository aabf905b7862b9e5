"""The ``standard`` format: the generic JSON event, signed as Standard Webhooks."""

from __future__ import annotations

from notifier.config import Webhook
from notifier.delivery.formats.base import Body, Format
from notifier.events import Delivery
from notifier.util.json import dumps_bytes
from notifier.util.time import format_time

__all__ = ["FORMAT", "standard"]


def standard(delivery: Delivery) -> bytes:
    """The generic event: ``{"type", "timestamp", "data": {"rules", "message"}}``.

    The body depends only on the delivery, so every retry sends the same bytes.
    """
    event = delivery.event
    document = {
        "type": event.kind,
        "timestamp": format_time(event.detected_at),
        "data": {"rules": list(delivery.rules), "message": event.message}
        if event.kind.startswith("message.") else dict(event.message),  # an ops event
    }
    return dumps_bytes(document)


def _build(_webhook: Webhook) -> Body:
    return standard


FORMAT = Format("standard", _build)
