"""What a payload format is: a ``Format`` object, and the ``Payload`` it gives a delivery.

One ``Format`` holds everything the notifier knows about a format: its name, the rate it
is sent at unless the webhook sets one, whether Standard Webhooks signatures apply,
whether ``group_wait`` may group its messages, the keys it reads from its webhook and
how it checks them (``validate``, called by the config loader through
``notifier.config.format_fields.FormatRules``), and how it builds a body (``build``), or,
for a format whose request is more than a body (a content type or headers of its own,
like ``cloudevents``), the whole ``Payload`` (``request``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from notifier.config import Rate, Webhook
from notifier.config.format_fields import FormatOptions
from notifier.events import Delivery

__all__ = ["Body", "Format", "Formatter", "Payload"]


@dataclass(frozen=True, slots=True)
class Payload:
    """A formatted request body and whether Standard Webhooks signatures apply."""

    body: bytes
    content_type: str = "application/json"
    signed: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    """Headers of the format's own (e.g. CloudEvents' ``ce-*``), sent with the body."""


Formatter = Callable[[Delivery], Payload]
Body = Callable[[Delivery], bytes]
"""A pure function from a delivery to its body (the same bytes on every retry)."""


def _no_options(_options: FormatOptions) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Format:
    """One payload format: everything the notifier knows about it."""

    name: str
    build: Callable[[Webhook], Body]
    """The body function of a webhook of this format (prepared once per webhook)."""
    signed: bool = True
    """Standard Webhooks signature headers are sent (an unsigned format refuses a secret)."""
    groupable: bool = False
    """``group_wait`` may gather one rule's events in one room into one message."""
    default_rate: Rate | None = None
    """The webhook's ``rate_limit`` when it sets none (None: unlimited)."""
    options: tuple[str, ...] = ()
    """The webhook keys only this format reads (config refuses them on other formats)."""
    check: Callable[[FormatOptions], dict[str, Any]] = _no_options
    """Checks ``options`` at load time and gives the Webhook fields they set."""
    request: Callable[[Webhook], Formatter] | None = None
    """Builds the whole Payload of a webhook when the body alone is not enough (None: a
    body from ``build`` with the webhook's ``content_type``)."""

    def validate(self, options: FormatOptions) -> dict[str, Any]:
        """The Webhook fields this format's keys give; problems go through ``options``."""
        return self.check(options)

    def plain(self, webhook: Webhook) -> Body | None:
        """The body function of ``webhook`` when its request is that body alone, sent with
        the webhook's ``content_type`` and signed as ``signed`` says (what a transport can
        send without a ``Payload`` per delivery); None when ``request`` builds it."""
        return None if self.request is not None else self.build(webhook)

    def formatter(self, webhook: Webhook) -> Formatter:
        """The payload function of ``webhook``: its body, content type and signing."""
        if self.request is not None:
            return self.request(webhook)
        body = self.build(webhook)
        content_type, signed = webhook.content_type, self.signed

        def format_delivery(delivery: Delivery) -> Payload:
            return Payload(body(delivery), content_type, signed)

        return format_delivery
