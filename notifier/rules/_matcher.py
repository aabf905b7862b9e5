"""Rules compiled once into a matcher: ``match(message, kind, rooms)`` → rule names. No I/O.

Conditions combine with AND, the values of one list with OR. All keywords of all rules
live in one index (see ``_text``); a message's words are looked up once, and only the
rules that one of the found keywords names (plus the rules without keywords) are looked
at further, so the cost per message grows with its length, not with the rule count.

``match`` is the hot path (every message read): per event kind a ``Plan`` (see ``_plan``)
files the rules that a keyword settles outright apart from the rest, so most messages are
decided by set operations on their tokens; the conditions of the other rules are checked
one by one, as ``explain`` always does. ``match_page`` takes a page at once, and calls
``match`` only for the messages that hold a keyword's first token (see ``_page``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from notifier.config.model import RULE_EVENTS, Rule
from notifier.rules._page import suspects
from notifier.rules._plan import Plan, RuleKeys
from notifier.rules._text import KeywordIndex, normalize, unicode_normalize
from notifier.util.regex import LinearPattern, compile_pattern

__all__ = ["CONDITIONS", "Matcher", "RuleMatch", "compile_rules"]

_NEVER = b""
"""A keyword key never found: stands for a keyword that has no words."""
_NOTHING: frozenset[bytes] = frozenset()
_MAX_PLANS = 16
"""Plans kept per matcher: one per event kind seen (two in practice)."""


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Why one rule matched: the keywords (as written) and regex patterns it found."""

    rule: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


class _View:
    """One message as the conditions see it; the text work is done at most once."""

    __slots__ = ("_data", "_normalize", "_text", "found", "kind", "message", "rooms")

    def __init__(self, message: Mapping[str, Any], kind: str, rooms: Collection[str],
                 found: set[bytes] | frozenset[bytes], normalizer: Callable[[str], str]) -> None:
        self.message, self.kind, self.found = message, kind, found
        room_id = message.get("roomID")
        self.rooms = {*rooms, room_id} if isinstance(room_id, str) else rooms
        self._normalize = normalizer
        self._text: str | None = None
        self._data: bytes | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._normalize(str(self.message.get("body") or ""))
        return self._text

    @property
    def data(self) -> bytes:
        """``text`` as UTF-8, what the rule patterns search (encoded once per message)."""
        if self._data is None:
            # a lone surrogate (JSON allows \ud800) must not raise: RE2 skips such bytes
            self._data = self.text.encode(errors="surrogatepass")
        return self._data

    def links(self) -> list[Mapping[str, Any]]:
        links = self.message.get("links")
        return [link for link in links if isinstance(link, Mapping)] \
            if isinstance(links, list) else []


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    rule: Rule
    any_ids: Mapping[bytes, str] | None
    """keyword key → the keyword as written, for ``keywords``; None when not set."""
    all_ids: Mapping[bytes, str] | None
    exclude_ids: frozenset[bytes]
    patterns: tuple[LinearPattern, ...]
    checks: tuple[tuple[str, Callable[[_Compiled, _View], bool]], ...]


def _regex_hits(rule: _Compiled, view: _View) -> tuple[str, ...]:
    return tuple(p.pattern for p in rule.patterns if p.search(view.data))


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
    """Every rule of a config, compiled; immutable and safe to share (a plan for an event
    kind other than created and edited is built on first use and memoised, harmlessly).

    ``ascii_fast_path=False`` sends ASCII text down the full Unicode path too (the tests
    use it to show both give the same answers).
    """

    def __init__(self, rules: Sequence[Rule], *, ascii_fast_path: bool = True) -> None:
        self._index = KeywordIndex(ascii_fast_path=ascii_fast_path)
        self._ascii_fast_path = ascii_fast_path
        self._normalize = normalize if ascii_fast_path else unicode_normalize
        self._rules = tuple(self._compile(rule) for rule in rules)
        self._names = tuple(c.name for c in self._rules)
        self._by_name = {c.name: c for c in self._rules}
        self._keyed = len(self._index) > 0
        self._split = self._index.split_function
        self._filed = tuple(_filed(c) for c in self._rules)
        self._plans: dict[str, Plan] = {}
        for event in sorted(RULE_EVENTS):
            self._plan(f"message.{event}")
        self._always: list[int] = []
        self._by_keyword: dict[bytes, list[int]] = {}
        for i, c in enumerate(self._rules):
            ids = c.any_ids if c.any_ids is not None else c.all_ids
            if ids is None:
                self._always.append(i)
            for key in ids or ():
                self._by_keyword.setdefault(key, []).append(i)

    def _compile(self, rule: Rule) -> _Compiled:
        def ids(keywords: tuple[str, ...]) -> dict[bytes, str]:
            out: dict[bytes, str] = {}
            for keyword in keywords:
                out.setdefault(self._index.add(keyword) or _NEVER, keyword)
            return out

        any_ids = ids(rule.keywords) if rule.keywords else None
        if any_ids is not None:
            any_ids.pop(_NEVER, None)
        return _Compiled(
            rule.name, rule, any_ids,
            ids(rule.keywords_all) if rule.keywords_all else None,
            frozenset(ids(rule.exclude_keywords)) - {_NEVER},
            tuple(map(compile_pattern, rule.regex)),
            tuple((key, check) for key, check in CONDITIONS.items() if _is_set(rule, key)),
        )

    def _view(self, message: Mapping[str, Any], kind: str, rooms: Collection[str]) -> _View:
        body = message.get("body")
        found = self._index.find(str(body)) if body and self._keyed else _NOTHING
        return _View(message, kind, rooms, found, self._normalize)

    def _candidates(self, view: _View) -> list[_Compiled]:
        if not view.found:
            picked: Collection[int] = self._always
        else:
            chosen = set(self._always)
            for key in view.found:
                chosen.update(self._by_keyword.get(key, ()))
            picked = sorted(chosen)
        return [self._rules[i] for i in picked]

    def match(self, message: Mapping[str, Any], kind: str,
              rooms: Collection[str]) -> tuple[str, ...]:
        """Names of the rules that ``message`` satisfies for event ``kind``, in config order.

        ``rooms`` holds every name the message's room goes by (its id and its key); the
        message's own ``roomID`` counts too.
        """
        plan = self._plans.get(kind) or self._plan(kind)
        body = message.get("body")
        toks = self._split(str(body)) if body and self._keyed else []
        hits = plan.settled(toks)
        if plan.always or (plan.nominating and not plan.nominating.isdisjoint(toks)):
            hits = self._checked(plan, hits, toks, message, kind, rooms)
        return tuple(map(self._names.__getitem__, sorted(hits))) if hits else ()

    def match_page(self, messages: Sequence[Mapping[str, Any]], kind: str,
                   rooms: Collection[str]) -> list[tuple[int, tuple[str, ...]]]:
        """``match`` for each message of a page: (index, rule names) of each that matches
        a rule, in order. The page's ASCII text is searched once for the keys' first
        tokens (``_page``): the messages that hold none match nothing, and only the
        others are matched one by one."""
        plan = self._plans.get(kind) or self._plan(kind)
        picked: Sequence[int] | None = None
        if self._keyed and self._ascii_fast_path and not plan.always:
            picked = suspects(messages, plan.starts)
        matched = []
        for i in range(len(messages)) if picked is None else picked:
            rules = self.match(messages[i], kind, rooms)
            if rules:
                matched.append((i, rules))
        return matched

    def _checked(self, plan: Plan, hits: set[int] | frozenset[int], toks: list[bytes],
                 message: Mapping[str, Any], kind: str, rooms: Collection[str]) -> set[int]:
        """``hits`` and the rules that ``plan`` says to check and that pass every check."""
        found = self._index.find_keys(toks) if toks else _NOTHING
        pending = plan.always.union(*map(plan.nominated.__getitem__, found))
        view = _View(message, kind, rooms, found, self._normalize)
        return {*hits, *(i for i in pending if _passes(self._rules[i], view))}

    def _plan(self, kind: str) -> Plan:
        plan = Plan(kind.removeprefix("message."), self._filed, self._index.keys())
        if len(self._plans) < _MAX_PLANS:
            self._plans[kind] = plan
        return plan

    def explain(self, message: Mapping[str, Any], kind: str,
                rooms: Collection[str]) -> tuple[RuleMatch, ...]:
        """Like ``match``, with the keywords and patterns that made each rule match."""
        view = self._view(message, kind, rooms)
        out = []
        for c in self._candidates(view):
            if _passes(c, view):
                words = [w for ids in (c.any_ids, c.all_ids) if ids
                         for key, w in ids.items() if key in view.found]
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
        return self._names


def _passes(c: _Compiled, view: _View) -> bool:
    return all(check(c, view) for _, check in c.checks)


def _filed(c: _Compiled) -> RuleKeys:
    """How a plan files ``c``: by its keywords, else its keywords_all (never by _NEVER)."""
    ids = c.any_ids if c.any_ids is not None else c.all_ids
    outright = c.any_ids is not None and all(key in ("events", "keywords") for key, _ in c.checks)
    return RuleKeys(c.rule.events, None if ids is None else ids.keys() - {_NEVER}, outright)


def compile_rules(rules: Sequence[Rule]) -> Matcher:
    """Compile ``rules`` once; the result is immutable and safe to share."""
    return Matcher(rules)

