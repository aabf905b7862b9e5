"""What a chat message (Slack, Teams) says about an event: pure helpers both formats share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from notifier.delivery.grouping import members_of
from notifier.events import EDITED, Delivery, is_edited

__all__ = ["ELLIPSIS", "QUOTED_IN_GROUP", "body", "cut", "headline", "images", "sender",
           "summary", "when"]

ELLIPSIS = "…"
#: How many messages of a group are quoted; the rest are counted.
QUOTED_IN_GROUP = 5
#: Image links shown per message.
MAX_IMAGES = 10


def cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit - 1`` characters and a visible "…"."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def headline(delivery: Delivery) -> str:
    """The title of a message: the rules it matched (and whether it was an edit)."""
    rules = ", ".join(delivery.rules) or "a rule"
    what = "Edited message" if delivery.event.kind == EDITED else "New message"
    return f"{what} matched {rules}"


def summary(delivery: Delivery) -> str:
    """The title of a group: "5 new messages in support-42 matched refunds"."""
    count = len(members_of(delivery))
    rule = delivery.rules[0] if delivery.rules else "a rule"
    return f"{count} new messages in {delivery.event.room} matched {rule}"


def sender(message: Mapping[str, Any]) -> str:
    """Who wrote the message and as what kind of user: "Jane Doe (member)"."""
    name = " ".join(str(message.get(k) or "").strip() for k in ("first", "last")).strip()
    name = name or str(message.get("username") or message.get("userID") or "someone")
    kind = message.get("userType")
    return f"{name} ({kind})" if kind else name


def when(message: Mapping[str, Any]) -> str:
    """The time that matters: ``editedAt`` for an edit, else ``createdAt`` (ISO 8601)."""
    return str(message.get("editedAt") if is_edited(message) else message.get("createdAt", ""))


def images(message: Mapping[str, Any]) -> list[str]:
    """The http(s) URLs of the message's image links, at most MAX_IMAGES."""
    links = message.get("links")
    urls = [str(link.get("url")) for link in links if isinstance(link, Mapping)
            and link.get("type") == "image"] if isinstance(links, Sequence) else []
    return [u for u in urls if u.startswith(("https://", "http://"))][:MAX_IMAGES]


def body(message: Mapping[str, Any]) -> str:
    """The message text ("(no text)" when empty, so a quote is never blank)."""
    return str(message.get("body") or "").strip() or "(no text)"
