"""A RoomHistory answer, validated: a ``Page`` of well-formed messages and its ``Defect``s.

A page that is malformed as a whole (not an object, no message list, a wrong ``hasMore``
or ``nextCursor``) raises RoomlioTransientError, so the tailer retries it and never skips
or advances past it. A malformed message within a well-formed page is not the page's
fault: it becomes a Defect, for the tailer to quarantine, and the rest of the page stands.

Every message read goes through ``parse_page``: a well-formed one is recognised by a
quick test of its fields' types (in ``_read``, all fields there; ``_created_if_well_formed``
when some are left out), and only a message that fails it is examined again
(``check_message``) to say what is wrong with it. The newest ``createdAt`` the parser
read is kept (``Page.newest``), so the tail does not read every message's again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from notifier.errors import RoomlioTransientError
from notifier.util.keys import own_keys
from notifier.util.shown import shown
from notifier.util.time import parse_time

__all__ = ["Defect", "Page", "check_message", "message_id", "parse_page", "without_id"]

_REQUIRED_STRINGS = ("id", "createdAt")
_OPTIONAL_STRINGS = ("body", "editedAt", "messageType", "userType", "roomID")
_STRING_OR_NONE = (str, type(None))
_LIST_OR_NONE = (list, type(None))
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
#: What ``_read`` takes from each message, in the order it unpacks them.
_CHECKED = ("id", "createdAt", "body", "editedAt", "messageType", "userType", "roomID", "links")


@dataclass(frozen=True, slots=True)
class Defect:
    """A message of a page that cannot be processed as it is (to be quarantined)."""

    index: int
    """Its position in the page's ``messages``."""
    reason: str
    """What is wrong, in a line (remote text in it escaped)."""
    message: Any
    """The message exactly as received (any JSON value)."""


@dataclass(frozen=True, slots=True)
class Page:
    """One RoomHistory answer, validated."""

    messages: tuple[Mapping[str, Any], ...]
    """The well-formed messages, in the page's order."""
    has_more: bool
    next_cursor: str
    defects: tuple[Defect, ...] = ()
    """The messages that are not well-formed: the page stands without them."""
    last_id: str = ""
    """The id of the page's last message that has a usable one, defective or not (the
    tail's position); "" when none has (then the last well-formed message's)."""
    newest: datetime | None = None
    """The latest ``createdAt`` of ``messages`` as ``parse_page`` read it, so the tail need
    not read every message's again; None when not known (a page built otherwise, or no
    messages)."""


def parse_page(body: Any) -> Page:
    """Validate a RoomHistory answer. A malformed answer (not an object, no message list,
    wrong ``hasMore``/``nextCursor``) raises RoomlioTransientError, to be retried; a
    malformed *message* is a Defect of the page, and the rest of the page stands."""
    if not isinstance(body, dict):
        raise RoomlioTransientError("malformed page: the answer is not a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise RoomlioTransientError("malformed page: 'messages' is missing or not a list")
    has_more = body.get("hasMore", False)
    cursor = body.get("nextCursor") or ""
    if not isinstance(has_more, bool) or not isinstance(cursor, str):
        raise RoomlioTransientError("malformed page: 'hasMore' or 'nextCursor' has a wrong type")
    return _read(messages, has_more, cursor)


def _read(messages: list[Any], has_more: bool, cursor: str) -> Page:
    """The page of ``messages``. A message whose fields are all there with the usual types
    is taken here (the same checks as ``check_message``'s, written out: a JSON decoder
    makes no subclasses, so ``type() is`` stands for ``isinstance``); any other goes the
    long way (``_examined``). A busy room's messages share their second: a ``createdAt``
    spelt as the one before it is not read again."""
    fields = _fields_of(messages)
    good: list[Mapping[str, Any]] = []
    defects: list[Defect] = []
    last_id, newest = "", None
    text: str | None = None  # the last createdAt read, and its time
    when: datetime | None = None
    for i, msg in enumerate(messages):
        try:
            ident, created, body, edited, kind, user, room, links = fields(msg)
        except (KeyError, TypeError):  # a field left out, or not an object at all
            ident = None
        if (type(ident) is str and ident and type(msg) is dict and type(created) is str
                and type(body) in _STRING_OR_NONE and type(edited) in _STRING_OR_NONE
                and type(kind) in _STRING_OR_NONE and type(user) in _STRING_OR_NONE
                and type(room) in _STRING_OR_NONE and type(links) in _LIST_OR_NONE):
            if created != text:
                text, when = created, parse_time(created)
                if when is not None and (newest is None or when > newest):
                    newest = when
            if when is not None:
                good.append(msg)
                last_id = ident
                continue
        read = _created_if_well_formed(msg) or _examined(msg)
        if isinstance(read, datetime):
            good.append(msg)
            newest = read if newest is None or read > newest else newest
        else:
            defects.append(Defect(i, read, msg))
        last_id = message_id(msg) or last_id
    return Page(tuple(good), has_more, cursor, tuple(defects), last_id, newest)


def _fields_of(messages: list[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A message's ``_CHECKED`` fields, looked up by the key objects of the page's first
    message that is an object (``notifier.util.keys``)."""
    first = next((m for m in messages if type(m) is dict), None)
    return itemgetter(*own_keys(first, _CHECKED))


def without_id(messages: tuple[Mapping[str, Any], ...],
               ident: str | None) -> tuple[Mapping[str, Any], ...]:
    """The well-formed ``messages`` (a ``Page``'s) but those whose id is ``ident``: the
    same tuple when none is, as for nearly every page (the ids compared in one C loop,
    read by the page's own key object)."""
    if ident is None or not messages:
        return messages  # a well-formed message's id is a string
    key, = own_keys(messages[0], ("id",))
    if ident not in list(map(itemgetter(key), messages)):
        return messages
    return tuple(m for m in messages if m["id"] != ident)


def _examined(msg: Any) -> datetime | str:
    """The ``createdAt`` of a message that ``_created_if_well_formed`` turned down if it
    is well-formed all the same, else what is wrong with it."""
    reason = check_message(msg)
    if reason is not None:
        return reason
    # well-formed after all (a subclass of str, say, which no JSON decoder makes):
    # check_message has read its createdAt
    return parse_time(msg["createdAt"]) or _FAR_FUTURE


def _created_if_well_formed(msg: Any) -> datetime | None:
    """The message's ``createdAt`` if ``check_message`` would find nothing wrong with it,
    else None (then it decides what is). The same checks, written out: every message
    read comes through here, and a JSON decoder makes no subclasses, so ``type() is``
    stands for ``isinstance``."""
    if type(msg) is not dict:
        return None
    get = msg.get
    ident, created = get("id"), get("createdAt")
    if (type(ident) is str and ident and type(created) is str
            and type(get("body")) in _STRING_OR_NONE
            and type(get("editedAt")) in _STRING_OR_NONE
            and type(get("messageType")) in _STRING_OR_NONE
            and type(get("userType")) in _STRING_OR_NONE
            and type(get("roomID")) in _STRING_OR_NONE
            and type(get("links")) in _LIST_OR_NONE):
        return parse_time(created)
    return None


def message_id(msg: Any) -> str:
    """The message's id if it is a usable one (a non-empty string), else ""."""
    found = msg.get("id") if isinstance(msg, dict) else None
    return found if isinstance(found, str) else ""


def check_message(msg: Any) -> str | None:
    """What is wrong with one message of a page (None: nothing), in a line (pure)."""
    if not isinstance(msg, dict):
        return f"the message is {_kind(msg)}, not an object"
    for key in _REQUIRED_STRINGS:
        if not isinstance(msg.get(key), str) or not msg[key]:
            return f"{key} is {_kind(msg.get(key))}, not a non-empty string"
    for key in _OPTIONAL_STRINGS:
        if msg.get(key) is not None and not isinstance(msg[key], str):
            return f"{key} is {_kind(msg[key])}, not a string"
    if msg.get("links") is not None and not isinstance(msg["links"], list):
        return f"links is {_kind(msg['links'])}, not a list"
    if parse_time(msg["createdAt"]) is None:
        return f"createdAt {shown(repr(msg['createdAt']), 60)} is not an ISO 8601 time"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "missing or null"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    names = {bool: "a boolean", int: "a number", float: "a number", list: "a list",
             dict: "an object"}
    return names.get(type(value), type(value).__name__)
