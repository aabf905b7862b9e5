"""Rules compiled once into a matcher: ``match(message, kind, rooms)`` → rule names. No I/O.

Keywords are compared after Unicode NFKC normalisation and case folding, as whole words
or whole phrases: the text is split into word tokens (``\\w+``) and a keyword matches a
run of consecutive tokens equal to its own. ``refund`` matches "REFUND!!" and "a refund,"
but not "refunded"; ``cancel my account`` matches "Cancel  my\\naccount".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from notifier.config import Rule

__all__ = ["Matcher", "compile_rules", "normalize", "tokens"]

_WORD = re.compile(r"\w+")


def normalize(text: str) -> str:
    """NFKC, then case-fold: how both keywords and message text are compared."""
    return unicodedata.normalize("NFKC", text).casefold()


def tokens(text: str) -> list[str]:
    """The word tokens of ``text`` after normalisation."""
    return _WORD.findall(normalize(text))


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    kinds: frozenset[str]
    rooms: frozenset[str] | None
    message_types: frozenset[str] | None
    user_types: frozenset[str] | None
    keyword_ids: frozenset[int] | None
    """Indexes into the matcher's keyword table; None when the rule has no keywords."""


class Matcher:
    """Every rule of a config, compiled; one pass over a message's tokens finds all keywords."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        keyword_index: dict[tuple[str, ...], int] = {}
        compiled = []
        for rule in rules:
            ids = None
            if rule.keywords:
                ids = frozenset(
                    keyword_index.setdefault(tuple(tokens(k)), len(keyword_index))
                    for k in rule.keywords if tokens(k)
                )
            compiled.append(_Compiled(
                rule.name, frozenset(f"message.{e}" for e in rule.events), rule.rooms,
                rule.message_type, rule.user_type, ids,
            ))
        self._rules = tuple(compiled)
        # first token -> [(all tokens of the keyword, keyword id)]
        self._by_first: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for toks, kid in keyword_index.items():
            self._by_first.setdefault(toks[0], []).append((toks, kid))

    def keywords_in(self, text: str) -> set[int]:
        """Ids of every keyword present in ``text`` as whole words."""
        toks = tokens(text)
        found: set[int] = set()
        by_first = self._by_first
        for i, tok in enumerate(toks):
            for kw, kid in by_first.get(tok, ()):
                if len(kw) == 1 or tuple(toks[i:i + len(kw)]) == kw:
                    found.add(kid)
        return found

    def match(self, message: Mapping[str, Any], kind: str,
              rooms: Collection[str]) -> tuple[str, ...]:
        """Names of the rules that ``message`` satisfies for event ``kind``, in config order.

        ``rooms`` holds every name the message's room goes by (its id and its key).
        """
        found: set[int] | None = None
        names = []
        for rule in self._rules:
            if kind not in rule.kinds:
                continue
            if rule.rooms is not None and rule.rooms.isdisjoint(rooms):
                continue
            if rule.message_types is not None and message.get("messageType") not in rule.message_types:
                continue
            if rule.user_types is not None and message.get("userType") not in rule.user_types:
                continue
            if rule.keyword_ids is not None:
                if found is None:
                    found = self.keywords_in(str(message.get("body") or ""))
                if rule.keyword_ids.isdisjoint(found):
                    continue
            names.append(rule.name)
        return tuple(names)


def compile_rules(rules: Sequence[Rule]) -> Matcher:
    """Compile ``rules`` once; the result is immutable and safe to share."""
    return Matcher(rules)
