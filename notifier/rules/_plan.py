"""``match``'s hot path: for one event kind, which rules each word of a message settles.

Most rules set only keywords (and events, which the kind settles before any message is
read): for them, finding one of their keywords *is* the match. A ``Plan`` files those
rules by the first token of each keyword, and phrases also by their first two tokens, so
a message is decided by one set intersection of its tokens with the first tokens, a dict
lookup per token found, and, when a phrase's first token is there, one intersection of
the message's adjacent token pairs with the phrases' first pairs (a phrase of three or
more tokens is then confirmed as `` key `` in the tokens joined by spaces). The other
rules (more conditions) are only *nominated* by their keywords, or checked for every
message when they have no keywords; the matcher checks their conditions one by one.

Keys are a keyword's tokens joined by single spaces (see ``_text.KeywordIndex``); tokens
hold no spaces, so `` key `` occurs in the joined tokens exactly where they are
consecutive.

Python's cost here is per token and per keyword found: at 1,000 rules a message that
triggers none costs about as much as its tokenizing (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import pairwise
from typing import NamedTuple, TypeVar

__all__ = ["Plan", "RuleKeys"]

_NONE: frozenset[int] = frozenset()
_Pair = tuple[bytes, bytes]
_K = TypeVar("_K", bytes, _Pair)


class RuleKeys(NamedTuple):
    """What a plan needs to know of one rule."""

    events: frozenset[str]
    keys: Collection[bytes] | None
    """The keys it is filed under (its keywords, else its keywords_all); None if neither."""
    outright: bool
    """Whether finding one of ``keys`` is enough (it sets nothing but events and keywords)."""


class Plan:
    """The rules of one event kind, filed for ``match``; immutable once built."""

    __slots__ = ("_firsts", "_longer", "_pairs", "_phrase_firsts", "_singles", "always",
                 "nominated", "nominating", "starts")

    def __init__(self, event: str, rules: Sequence[RuleKeys], keys: Iterable[bytes]) -> None:
        outright: dict[bytes, set[int]] = {}
        nominated: dict[bytes, set[int]] = {key: set() for key in keys}
        always: set[int] = set()
        for i, rule in enumerate(rules):
            if event not in rule.events:
                continue
            if rule.keys is None:
                always.add(i)
            for key in rule.keys or ():
                (outright.setdefault(key, set()) if rule.outright else nominated[key]).add(i)
        self._file_outright(outright)
        self.nominated: Mapping[bytes, frozenset[int]] = _frozen(nominated)
        """key → the rules with more conditions that its presence makes worth checking."""
        self.always = frozenset(always)
        """Rules with neither keywords nor keywords_all: checked for every message."""
        self.nominating = frozenset(key.partition(b" ")[0] for key, ids in nominated.items()
                                    if ids)
        """First tokens of the keys that nominate a rule: without one, none is nominated."""
        self.starts = self._firsts | self.nominating
        """Every key's first token that settles or nominates a rule: a message holding
        none matches no rule of the plan but ``always``."""

    def _file_outright(self, rules_by_key: dict[bytes, set[int]]) -> None:
        singles: dict[bytes, set[int]] = {}
        pairs: dict[_Pair, set[int]] = {}
        longer: dict[_Pair, list[tuple[bytes, frozenset[int]]]] = {}
        for key, rules in rules_by_key.items():
            toks = key.split(b" ")
            single = singles.setdefault(toks[0], set())
            if len(toks) == 1:
                single.update(rules)
                continue
            pair = pairs.setdefault((toks[0], toks[1]), set())
            if len(toks) == 2:
                pair.update(rules)
            else:
                longer.setdefault((toks[0], toks[1]), []).append(
                    (b" " + key + b" ", frozenset(rules)))
        self._singles = _frozen(singles)
        """first token → the rules its one-token keyword settles (none if it only starts
        phrases)."""
        self._firsts = frozenset(singles)
        self._phrase_firsts = frozenset(first for first, _ in pairs)
        self._pairs = _frozen(pairs)
        """(first, second) token → the rules its two-token phrase settles."""
        self._longer = {pair: tuple(entries) for pair, entries in longer.items()}
        """(first, second) token → each longer phrase starting so (padded with spaces) and
        its rules."""

    def settled(self, toks: list[bytes]) -> set[int] | frozenset[int]:
        """Indexes of the outright rules that the message with tokens ``toks`` matches."""
        starts = self._firsts.intersection(toks)
        if not starts:
            return _NONE
        hits: set[int] = set()
        singles = self._singles
        for first in starts:
            hits |= singles[first]
        if not self._phrase_firsts.isdisjoint(starts):
            joined = b""
            for pair in self._pairs.keys() & pairwise(toks):
                hits |= self._pairs[pair]
                for padded, rules in self._longer.get(pair, ()):
                    joined = joined or b" " + b" ".join(toks) + b" "
                    if padded in joined:
                        hits |= rules
        return hits


def _frozen(index: dict[_K, set[int]]) -> dict[_K, frozenset[int]]:
    """The same mapping with frozen values, equal values sharing one object."""
    shared: dict[frozenset[int], frozenset[int]] = {}
    out: dict[_K, frozenset[int]] = {}
    for key, ids in index.items():
        frozen = frozenset(ids)
        out[key] = shared.setdefault(frozen, frozen)
    return out
