"""Payload formats, chosen by the webhook's ``format``: a registry of formatter factories.

A factory takes the Webhook and returns its formatter, a pure function from a Delivery
to the Payload to POST (the same bytes on every retry). ``slack``, ``teams`` and
``template`` live in their own modules and are imported only when a webhook uses them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from notifier.config import Webhook
from notifier.events import Delivery
from notifier.util.json import dumps_bytes
from notifier.util.time import format_time

__all__ = ["FORMATS", "Formatter", "Payload", "formatter_for", "standard"]


@dataclass(frozen=True, slots=True)
class Payload:
    """A formatted request body and whether Standard Webhooks signatures apply."""

    body: bytes
    content_type: str = "application/json"
    signed: bool = True


Formatter = Callable[[Delivery], Payload]


def standard(delivery: Delivery) -> Payload:
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
    return Payload(dumps_bytes(document))


def _standard(_webhook: Webhook) -> Formatter:
    return standard


def _lazy(target: str) -> Callable[[Webhook], Formatter]:
    """A factory imported from ``module:function`` on first use."""
    module, _, name = target.partition(":")

    def factory(webhook: Webhook) -> Formatter:
        built: Formatter = getattr(importlib.import_module(module), name)(webhook)
        return built

    return factory


FORMATS: dict[str, Callable[[Webhook], Formatter]] = {
    "standard": _standard,
    "slack": _lazy("notifier.delivery.formats.slack:formatter"),
    "teams": _lazy("notifier.delivery.formats.teams:formatter"),
    "template": _lazy("notifier.delivery.formats.template:formatter"),
}


def formatter_for(webhook: Webhook) -> Formatter:
    """The payload function of ``webhook``."""
    return FORMATS[webhook.format](webhook)
