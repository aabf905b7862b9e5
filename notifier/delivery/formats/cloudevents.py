"""The ``cloudevents`` format: the event as a CloudEvents 1.0 request (HTTP binding, JSON).

Structured mode (the default) sends the whole event as the body, ``content-type:
application/cloudevents+json``::

    {"specversion": "1.0", "id": "<the webhook-id>", "source": "urn:roomlio:room:<roomID>",
     "type": "com.roomlio.message.created", "subject": "<the message id>",
     "time": "<when the notifier saw it>", "datacontenttype": "application/json",
     "data": {"rules": [...], "message": {...}}}

Binary mode (``cloudevents_mode: binary``) sends ``data`` as an ``application/json`` body
and every other attribute as a ``ce-*`` header, percent-encoded as the HTTP binding says.
``id`` is the delivery's stable ``webhook-id``, so a receiver dedupes on either. With a
secret, Standard Webhooks signatures apply as in ``standard``: over the exact body sent
(in binary mode the ``ce-*`` headers are outside it; ``ce-id`` equals the signed
``webhook-id``). An operational event (``webhook.disabled``) has the type
``com.roomlio.webhook.disabled`` and the source ``urn:roomlio-notifier:webhook:<name>``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from notifier.config import Webhook
from notifier.config.fields import choice
from notifier.config.format_fields import FormatOptions
from notifier.delivery.formats.base import Body, Format, Formatter, Payload
from notifier.delivery.formats.standard import data_of
from notifier.events import Delivery
from notifier.util.json import dumps_bytes
from notifier.util.time import format_time

__all__ = ["CONTENT_TYPE", "FORMAT", "MODES", "SPECVERSION", "TYPE_PREFIX", "attributes",
           "header_value", "source_of", "structured", "validate"]

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"
TYPE_PREFIX = "com.roomlio."
MODES = ("structured", "binary")
#: What the HTTP binding leaves unencoded in a header value: printable ASCII but for
#: space, '"' and '%' (section 3.1.3.2).
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')


def source_of(delivery: Delivery) -> str:
    """The event's ``source``, a URI: the Roomlio room (its id as Roomlio sent it, else the
    room as configured) or, for an operational event, the webhook it is about."""
    event = delivery.event
    if not event.kind.startswith("message."):
        return "urn:roomlio-notifier:webhook:" + quote(str(event.message.get("webhook", "")),
                                                       safe="")
    room = event.message.get("roomID")
    return "urn:roomlio:room:" + quote(room if isinstance(room, str) and room else event.room,
                                       safe="")


def _subject(delivery: Delivery) -> str:
    event = delivery.event
    key = "id" if event.kind.startswith("message.") else "webhook"
    return str(event.message.get(key, ""))


def attributes(delivery: Delivery) -> dict[str, str]:
    """Every context attribute of the event but ``data``, in the order they are sent."""
    event = delivery.event
    return {
        "specversion": SPECVERSION,
        "id": delivery.id,
        "source": source_of(delivery),
        "type": TYPE_PREFIX + event.kind,
        "subject": _subject(delivery),
        "time": format_time(event.detected_at),
        "datacontenttype": DATA_CONTENT_TYPE,
    }


def structured(delivery: Delivery) -> bytes:
    """The structured-mode body: the attributes and ``data`` in one JSON object."""
    return dumps_bytes({**attributes(delivery), "data": data_of(delivery)})


def header_value(value: str) -> str:
    """``value`` percent-encoded for a ``ce-*`` header (UTF-8, as the binding says)."""
    return quote(value, safe=_HEADER_SAFE)


def _binary(delivery: Delivery) -> Payload:
    attrs = attributes(delivery)
    content_type = attrs.pop("datacontenttype")
    headers = tuple((f"ce-{name}", header_value(value)) for name, value in attrs.items())
    return Payload(dumps_bytes(data_of(delivery)), content_type, True, headers)


def _structured(delivery: Delivery) -> Payload:
    return Payload(structured(delivery), CONTENT_TYPE, True)


def _request(webhook: Webhook) -> Formatter:
    return _binary if webhook.cloudevents_mode == "binary" else _structured


def _build(webhook: Webhook) -> Body:
    request = _request(webhook)
    return lambda delivery: request(delivery).body


def validate(options: FormatOptions) -> dict[str, Any]:
    """The ``cloudevents_mode`` key: ``structured`` (the default) or ``binary``."""
    mode = options.value("cloudevents_mode", choice(MODES, "CloudEvents mode"), MODES[0])
    return {"cloudevents_mode": mode}


FORMAT = Format("cloudevents", _build, options=("cloudevents_mode",), check=validate,
                request=_request)
"""CloudEvents 1.0 over HTTP, signed like ``standard``; no default rate, no grouping."""
