"""The ``teams`` format: an Adaptive Card in the message a Teams Workflows webhook expects.

``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <card>}]}``; old Office 365
connector URLs accept the same. The card (version 1.4, every TextBlock wrapping) shows
the rules, the quoted message, the room, the sender, the time and image links, and the
whole payload is kept under Teams' 28 KB limit by shortening the quoted text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from notifier.config import Rate, Webhook
from notifier.delivery.formats import chat
from notifier.delivery.formats.base import Body, Format
from notifier.delivery.grouping import members_of
from notifier.events import Delivery

__all__ = ["CARD_VERSION", "FORMAT", "MAX_BYTES", "card", "teams_payload"]

CARD_VERSION = "1.4"
#: Teams refuses messages over 28 KB; leave room for the HTTP envelope.
MAX_BYTES = 27 * 1024
#: The longest quote tried first; shortened until the payload fits MAX_BYTES.
FIRST_LIMIT = 8000
MIN_LIMIT = 200
ADAPTIVE = "application/vnd.microsoft.card.adaptive"

Element = dict[str, Any]


def _text(text: str, **style: Any) -> Element:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _quote(message: Mapping[str, Any], limit: int) -> Element:
    return {"type": "Container", "style": "emphasis",
            "items": [_text(chat.cut(chat.body(message), limit))]}


def _images(message: Mapping[str, Any]) -> list[Element]:
    urls = chat.images(message)
    if not urls:
        return []
    links = " · ".join(f"[image {i}]({u})" for i, u in enumerate(urls, 1))
    return [_text(f"Images: {links}", size="Small")]


def _single(delivery: Delivery, limit: int) -> list[Element]:
    message = delivery.event.message
    facts = [("Room", delivery.event.room), ("From", chat.sender(message)),
             ("Time", chat.when(message))]
    return [
        _text(chat.headline(delivery), weight="Bolder", size="Medium"),
        _quote(message, limit),
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]},
        *_images(message),
    ]


def _group(delivery: Delivery, limit: int) -> list[Element]:
    members = members_of(delivery)
    body: list[Element] = [_text(chat.summary(delivery), weight="Bolder", size="Medium")]
    for member in members[: chat.QUOTED_IN_GROUP]:
        message = member.event.message
        body.append(_quote(message, limit))
        body.append(_text(f"{chat.sender(message)} · {chat.when(message)}",
                          isSubtle=True, size="Small", spacing="None"))
    rest = len(members) - chat.QUOTED_IN_GROUP
    if rest > 0:
        body.append(_text(f"{chat.ELLIPSIS}and {rest} more", isSubtle=True))
    return body


def card(delivery: Delivery, limit: int = FIRST_LIMIT) -> dict[str, Any]:
    """The Adaptive Card for a delivery (or a group), quotes cut to ``limit`` characters."""
    grouped = len(members_of(delivery)) > 1
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": _group(delivery, limit) if grouped else _single(delivery, limit),
    }


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def teams_payload(delivery: Delivery) -> bytes:
    """The message JSON, shortened until it is at most MAX_BYTES."""
    limit = FIRST_LIMIT
    while True:
        document = {"type": "message", "attachments": [
            {"contentType": ADAPTIVE, "contentUrl": None, "content": card(delivery, limit)}]}
        encoded = _encode(document)
        if len(encoded) <= MAX_BYTES or limit <= MIN_LIMIT:
            return encoded
        limit = max(MIN_LIMIT, limit * MAX_BYTES // len(encoded) - 50)


def _build(_webhook: Webhook) -> Body:
    return teams_payload


FORMAT = Format("teams", _build, signed=False, groupable=True, default_rate=Rate(4, 1.0))
"""Teams checks no signature; it allows about 4 messages a second per webhook."""
