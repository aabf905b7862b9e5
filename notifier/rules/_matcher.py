"""Rules compiled once into a matcher: ``match(message, kind, rooms)`` → rule names. No I/O.

Conditions combine with AND, the values of one list with OR. All keywords of all rules
live in one index (see ``_text``); a message's words are looked up once, and only the
rules that one of the found keywords names (plus the rules without keywords) are looked
at further, so the cost per message grows with its length, not with the rule count.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from notifier.config import Rule
from notifier.rules._text import KeywordIndex, normalize

__all__ = ["CONDITIONS", "Matcher", "RuleMatch", "compile_rules"]

_NEVER = -1
"""A keyword id never found: stands for a keyword that has no words."""


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Why one rule matched: the keywords (as written) and regex patterns it found."""

    rule: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


class _View:
    """One message as the conditions see it; the text work is done at most once."""

    __slots__ = ("_text", "found", "kind", "message", "rooms")

    def __init__(self, message: Mapping[str, Any], kind: str, rooms: Collection[str],
                 found: set[int]) -> None:
        self.message, self.kind, self.found = message, kind, found
        room_id = message.get("roomID")
        self.rooms = {*rooms, room_id} if isinstance(room_id, str) else rooms
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = normalize(str(self.message.get("body") or ""))
        return self._text

    def links(self) -> list[Mapping[str, Any]]:
        links = self.message.get("links")
        return [link for link in links if isinstance(link, Mapping)] \
            if isinstance(links, list) else []


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    rule: Rule
    any_ids: Mapping[int, str] | None
    """keyword id → the keyword as written, for ``keywords``; None when not set."""
    all_ids: Mapping[int, str] | None
    exclude_ids: frozenset[int]
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    checks: tuple[tuple[str, Callable[[_Compiled, _View], bool]], ...]


def _regex_hits(rule: _Compiled, view: _View) -> tuple[str, ...]:
    return tuple(source for source, pattern in rule.patterns if pattern.search(view.text))


def _in(value: object, allowed: frozenset[str] | None) -> bool:
    return allowed is not None and value in allowed


def _links_of_type(c: _Compiled, v: _View) -> bool:
    return any(_in(link.get("type"), c.rule.link_type) for link in v.links())


#: Every condition, cheapest first; a rule checks only the ones it sets.
CONDITIONS: dict[str, Callable[[_Compiled, _View], bool]] = {
    "events": lambda c, v: v.kind.removeprefix("message.") in c.rule.events,
    "rooms": lambda c, v: c.rule.rooms is not None and not c.rule.rooms.isdisjoint(v.rooms),
    "message_type": lambda c, v: _in(v.message.get("messageType"), c.rule.message_type),
    "user_type": lambda c, v: _in(v.message.get("userType"), c.rule.user_type),
    "users": lambda c, v: _in(v.message.get("userID"), c.rule.users),
    "exclude_users": lambda c, v: not _in(v.message.get("userID"), c.rule.exclude_users),
    "has_links": lambda c, v: bool(v.links()) is c.rule.has_links,
    "link_type": _links_of_type,
    "keywords": lambda c, v: not v.found.isdisjoint(c.any_ids or ()),
    "keywords_all": lambda c, v: v.found.issuperset(c.all_ids or ()),
    "exclude_keywords": lambda c, v: v.found.isdisjoint(c.exclude_ids),
    "regex": lambda c, v: bool(_regex_hits(c, v)),
}


def _is_set(rule: Rule, key: str) -> bool:
    value = getattr(rule, key)
    return key == "events" or (value is not None and value != ())


class Matcher:
    """Every rule of a config, compiled; immutable and safe to share."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._index = KeywordIndex()
        self._rules = tuple(self._compile(rule) for rule in rules)
        self._by_name = {c.name: c for c in self._rules}
        self._always: list[int] = []
        self._by_keyword: dict[int, list[int]] = {}
        for i, c in enumerate(self._rules):
            ids = c.any_ids if c.any_ids is not None else c.all_ids
            if ids is None:
                self._always.append(i)
            for kid in ids or ():
                self._by_keyword.setdefault(kid, []).append(i)

    def _compile(self, rule: Rule) -> _Compiled:
        def ids(keywords: tuple[str, ...]) -> dict[int, str]:
            out: dict[int, str] = {}
            for keyword in keywords:
                kid = self._index.add(keyword)
                out.setdefault(_NEVER if kid is None else kid, keyword)
            return out

        any_ids = ids(rule.keywords) if rule.keywords else None
        if any_ids is not None:
            any_ids.pop(_NEVER, None)
        return _Compiled(
            rule.name, rule, any_ids,
            ids(rule.keywords_all) if rule.keywords_all else None,
            frozenset(ids(rule.exclude_keywords)) - {_NEVER},
            tuple((p, re.compile(p, re.IGNORECASE)) for p in rule.regex),
            tuple((key, check) for key, check in CONDITIONS.items() if _is_set(rule, key)),
        )

    def _view(self, message: Mapping[str, Any], kind: str, rooms: Collection[str]) -> _View:
        body = message.get("body")
        found = self._index.find(str(body)) if body and len(self._index) else set()
        return _View(message, kind, rooms, found)

    def _candidates(self, view: _View) -> list[_Compiled]:
        if not view.found:
            picked: Collection[int] = self._always
        else:
            chosen = set(self._always)
            for kid in view.found:
                chosen.update(self._by_keyword.get(kid, ()))
            picked = sorted(chosen)
        return [self._rules[i] for i in picked]

    def match(self, message: Mapping[str, Any], kind: str,
              rooms: Collection[str]) -> tuple[str, ...]:
        """Names of the rules that ``message`` satisfies for event ``kind``, in config order.

        ``rooms`` holds every name the message's room goes by (its id and its key); the
        message's own ``roomID`` counts too.
        """
        view = self._view(message, kind, rooms)
        return tuple(c.name for c in self._candidates(view)
                     if all(check(c, view) for _, check in c.checks))

    def explain(self, message: Mapping[str, Any], kind: str,
                rooms: Collection[str]) -> tuple[RuleMatch, ...]:
        """Like ``match``, with the keywords and patterns that made each rule match."""
        view = self._view(message, kind, rooms)
        out = []
        for c in self._candidates(view):
            if all(check(c, view) for _, check in c.checks):
                words = [w for ids in (c.any_ids, c.all_ids) if ids
                         for kid, w in ids.items() if kid in view.found]
                out.append(RuleMatch(c.name, tuple(dict.fromkeys(words)), _regex_hits(c, view)))
        return tuple(out)

    def why_not(self, rule: str, message: Mapping[str, Any], kind: str,
                rooms: Collection[str]) -> str | None:
        """The first condition of ``rule`` that ``message`` fails, or None if it matches."""
        c = self._by_name[rule]
        view = self._view(message, kind, rooms)
        return next((key for key, check in c.checks if not check(c, view)), None)

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Every rule's name, in config order."""
        return tuple(c.name for c in self._rules)


def compile_rules(rules: Sequence[Rule]) -> Matcher:
    """Compile ``rules`` once; the result is immutable and safe to share."""
    return Matcher(rules)

