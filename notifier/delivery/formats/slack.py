"""The ``slack`` format: a Slack incoming-webhook payload, ``text`` plus Block Kit ``blocks``.

Message text is escaped for Slack's mrkdwn (``&``, ``<``, ``>``), so a chat message can
neither mention ``@channel`` nor forge a link, and cut to Slack's limits (3,000
characters a section, 150 a header, 50 blocks) with a visible "…". Slack does not check
signatures, so none are sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from notifier.config import Rate, Webhook
from notifier.delivery.formats import chat
from notifier.delivery.formats.base import Body, Format
from notifier.delivery.grouping import members_of
from notifier.events import Delivery
from notifier.util.time import parse_time

__all__ = ["FORMAT", "MAX_BLOCKS", "SECTION_LIMIT", "escape", "quoted", "slack_payload"]

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
FIELD_LIMIT = 2000
MAX_BLOCKS = 50
#: The notification text: short, it is what a phone shows.
FALLBACK_LIMIT = 300

Block = dict[str, Any]


def escape(text: str) -> str:
    """``text`` with the three characters mrkdwn reserves escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quoted(text: str, limit: int = SECTION_LIMIT) -> str:
    """``text`` escaped and quoted line by line, at most ``limit`` characters long."""
    keep = limit
    while True:
        raw = chat.cut(text, keep)
        result = "\n".join("> " + line for line in escape(raw).splitlines() or [""])
        if len(result) <= limit:
            return result
        keep -= max(1, len(result) - limit)  # escapes and "> " took room: shorten the source


def _link(url: str, label: str) -> str:
    safe = escape(quote(url, safe=":/?#[]@!$&'()*+,;=%~"))
    return f"<{safe}|{escape(label)}>"


def _time(message: Mapping[str, Any]) -> str:
    """A Slack date token (shown in the reader's time zone), the ISO time as its fallback."""
    iso = chat.when(message)
    moment = parse_time(iso)
    if moment is None:
        return escape(iso)
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time_secs}}|{iso}>"


def _header(text: str) -> Block:
    return {"type": "header",
            "text": {"type": "plain_text", "text": chat.cut(text, HEADER_LIMIT), "emoji": False}}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _message_blocks(room: str, message: Mapping[str, Any]) -> list[Block]:
    fields = [("Room", escape(room)), ("From", escape(chat.sender(message))),
              ("Time", _time(message))]
    blocks: list[Block] = [
        {"type": "section", "text": _mrkdwn(quoted(chat.body(message)))},
        {"type": "section", "fields": [_mrkdwn(chat.cut(f"*{k}*\n{v}", FIELD_LIMIT))
                                       for k, v in fields]},
    ]
    urls = chat.images(message)
    if urls:
        links = "  ".join(_link(u, f"image {i}") for i, u in enumerate(urls, 1))
        blocks.append({"type": "section", "text": _mrkdwn(chat.cut(f"*Images*  {links}",
                                                                    SECTION_LIMIT))})
    return blocks


def _group_blocks(delivery: Delivery) -> list[Block]:
    members = members_of(delivery)
    blocks: list[Block] = [_header(chat.summary(delivery))]
    for member in members[: chat.QUOTED_IN_GROUP]:
        message = member.event.message
        blocks.append({"type": "section", "text": _mrkdwn(quoted(chat.body(message)))})
        blocks.append({"type": "context", "elements": [_mrkdwn(
            chat.cut(f"{escape(chat.sender(message))} · {_time(message)}", SECTION_LIMIT))]})
    rest = len(members) - chat.QUOTED_IN_GROUP
    if rest > 0:
        more = f"{chat.ELLIPSIS}and {rest} more"
        blocks.append({"type": "context", "elements": [_mrkdwn(more)]})
    return blocks


def _fallback(delivery: Delivery) -> str:
    members = members_of(delivery)
    title = chat.summary(delivery) if len(members) > 1 else chat.headline(delivery)
    first = delivery.event.message
    text = f"{title} in {delivery.event.room}: {chat.sender(first)}: {chat.body(first)}"
    return escape(chat.cut(" ".join(text.split()), FALLBACK_LIMIT))


def slack_payload(delivery: Delivery) -> dict[str, Any]:
    """The incoming-webhook JSON for one delivery (or one group of them)."""
    if len(members_of(delivery)) > 1:
        blocks = _group_blocks(delivery)
    else:
        blocks = [_header(chat.headline(delivery)),
                  *_message_blocks(delivery.event.room, delivery.event.message)]
    if len(blocks) > MAX_BLOCKS:
        blocks = [*blocks[: MAX_BLOCKS - 1],
                  {"type": "context", "elements": [_mrkdwn(f"{chat.ELLIPSIS} (cut)")]}]
    return {"text": _fallback(delivery), "blocks": blocks}


def _body(delivery: Delivery) -> bytes:
    body = json.dumps(slack_payload(delivery), ensure_ascii=False, separators=(",", ":"))
    return body.encode()


def _build(_webhook: Webhook) -> Body:
    return _body


FORMAT = Format("slack", _build, signed=False, groupable=True, default_rate=Rate(1, 1.0))
"""Slack checks no signature; it allows about 1 message a second per webhook."""
