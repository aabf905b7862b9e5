"""Payload formats, one pure function each, chosen by the webhook's ``format``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from notifier.events import Delivery
from notifier.timeutil import format_time

__all__ = ["FORMATS", "Payload", "standard"]


@dataclass(frozen=True, slots=True)
class Payload:
    """A formatted request body and whether Standard Webhooks signatures apply."""

    body: bytes
    content_type: str = "application/json"
    signed: bool = True


def standard(delivery: Delivery) -> Payload:
    """The generic event: ``{"type", "timestamp", "data": {"rules", "message"}}``.

    The body depends only on the delivery, so every retry sends the same bytes.
    """
    event = delivery.event
    document = {
        "type": event.kind,
        "timestamp": format_time(event.detected_at),
        "data": {"rules": list(delivery.rules), "message": event.message},
    }
    return Payload(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())


FORMATS: dict[str, Callable[[Delivery], Payload]] = {"standard": standard}
