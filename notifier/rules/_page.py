"""``Matcher.match_page``'s shortcut: which messages of a page can match at all, found in
one pass over the page's text instead of one tokenizing per message.

A message that holds none of a plan's first tokens (``Plan.starts``: the first token of
every keyword that settles or nominates a rule) matches no rule of a plan that has no
``always`` rules: ``Plan.settled`` finds nothing and nothing is nominated. Most messages
of a busy room hold none. So the page's ASCII bodies are joined by spaces and turned into
their tokens in one translation (``_text.token_keys``'s, for the whole page: a-z0-9
runs, lower-cased, everything else a space); a first token found in that text between
spaces lies inside exactly one message's body, found by its offset. Only those messages,
and those whose body is not ASCII text, are matched one by one.

Searching costs a pass over the text per first token, so with more than ``_FEW`` of them
a page is not searched: its messages are all matched one by one.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from itertools import accumulate, count
from operator import add, itemgetter
from typing import Any

from notifier.rules._text import ASCII_WORDS
from notifier.util.keys import own_keys

__all__ = ["suspects"]

#: First tokens up to which each is searched for in a page's text.
_FEW = 8


def suspects(messages: Sequence[Mapping[str, Any]], starts: frozenset[bytes]) -> list[int] | None:
    """Indexes, ascending, of the messages that may hold one of ``starts`` as a token: all
    that do, maybe more. None: too many to search for (match every message)."""
    if len(starts) > _FEW:
        return None
    texts, joined, odd = _ascii_bodies(messages)
    page = b" " + joined.encode().translate(ASCII_WORDS) + b" "
    found = set(odd)
    offsets: list[int] | None = None
    for start in starts:
        needle = b" " + start + b" "
        at = page.find(needle)
        if at >= 0 and offsets is None:
            # where each body begins in the page: after the page's space and one per body
            offsets = list(map(add, accumulate(map(len, texts), initial=1), count()))
        while at >= 0:
            assert offsets is not None
            found.add(bisect_right(offsets, at + 1) - 1)
            at = page.find(needle, at + len(needle) - 1)  # its last space may start the next
    return sorted(found)


def _ascii_bodies(messages: Sequence[Mapping[str, Any]]) -> tuple[list[str], str, list[int]]:
    """Each message's body as the page's text holds it ("" for one that is not an ASCII
    string), that text (the bodies joined by spaces), and the indexes of the messages
    whose body is not an ASCII string but may hold words."""
    texts = _bodies(messages)
    try:
        joined = " ".join(texts)
    except TypeError:  # a body that is no string (None, when left out)
        pass
    else:
        if joined.isascii():
            return texts, joined, []
    clean: list[str] = []
    odd: list[int] = []
    for i, text in enumerate(texts):
        if type(text) is str and text.isascii():
            clean.append(text)
        else:
            clean.append("")
            if text:  # match reads str(body) of any other true value: left to it
                odd.append(i)
    return clean, " ".join(clean), odd


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
