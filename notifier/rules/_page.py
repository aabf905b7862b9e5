"""``Matcher.match_page``'s shortcut: which messages of a page can match at all, found in
one pass over the page's text instead of one tokenizing per message.

A message that holds none of a plan's first tokens (``Plan.starts``: the first token of
every keyword that settles or nominates a rule) matches no rule of a plan that has no
``always`` rules: ``Plan.settled`` finds nothing and nothing is nominated. Most messages
of a busy room hold none. So the page's ASCII bodies are joined, a NUL between spaces
after each, and turned into their tokens in one translation (``_text.token_keys``'s, for
the whole page: a-z0-9 runs, lower-cased, everything else a space, but the NULs kept); a
first token found in that text between spaces lies inside exactly one message's body,
the one after as many NULs as come before it (counted from the last hit on). Only those
messages, and those whose body is not ASCII text without NULs, are matched one by one.

Searching costs a pass over the text per first token, so with more than ``_FEW`` of them
a page is not searched: its messages are all matched one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from notifier.rules._text import ASCII_WORDS
from notifier.util.keys import own_keys

__all__ = ["suspects"]

#: First tokens up to which each is searched for in a page's text.
_FEW = 8
#: What ends each body in a page's text: a NUL, between spaces (a token at either end of
#: a body stays one), that no body in the text holds.
_END = " \x00 "
#: ``ASCII_WORDS``, but a NUL stays one: the page's text keeps where each body ends.
_PAGE_WORDS = b"\x00" + ASCII_WORDS[1:]


def suspects(messages: Sequence[Mapping[str, Any]], starts: frozenset[bytes]) -> list[int] | None:
    """Indexes, ascending, of the messages that may hold one of ``starts`` as a token: all
    that do, maybe more. None: too many to search for (match every message)."""
    if len(starts) > _FEW:
        return None
    joined, odd = _ascii_bodies(messages)
    page = b" " + joined.encode().translate(_PAGE_WORDS) + b" "
    found = set(odd)
    for start in starts:
        needle = b" " + start + b" "
        at, index, counted = page.find(needle), 0, 0
        while at >= 0:
            index += page.count(b"\x00", counted, at)  # the bodies ended before it
            counted = at
            found.add(index)
            at = page.find(needle, at + len(needle) - 1)  # its last space may start the next
    return sorted(found)


def _ascii_bodies(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[int]]:
    """The page's text (each message's body, "" for one that is not an ASCII string
    without NULs, each followed by ``_END``; the last one's left off), and the indexes
    of the messages whose body is not such a string but may hold words."""
    texts = _bodies(messages)
    try:
        joined = _END.join(texts)
    except TypeError:  # a body that is no string (None, when left out)
        pass
    else:
        if joined.isascii() and joined.count("\x00") == len(texts) - 1:
            return joined, []
    clean: list[str] = []
    odd: list[int] = []
    for i, text in enumerate(texts):
        if type(text) is str and text.isascii() and "\x00" not in text:
            clean.append(text)
        else:
            clean.append("")
            if text:  # match reads str(body) of any other true value: left to it
                odd.append(i)
    return _END.join(clean), odd


def _bodies(messages: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Each message's ``body`` (None when it has none), looked up by the first message's
    own key object: a decoder gives every message of a page the same key objects, and a
    dict finds the very object it holds without comparing text."""
    if not messages:
        return []
    own, = own_keys(messages[0], ("body",))
    try:
        return list(map(itemgetter(own), messages))
    except KeyError:
        return [message.get("body") for message in messages]
