"""Warnings about valid rules that cannot do what they say (``notifier check`` prints them).

Pure: it reads the Rule dataclasses. A warning never makes a config invalid: a rule that
can never match, a keyword another keyword of the same list makes redundant, a keyword
with no words in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from notifier.config import Rule
from notifier.errors import Problem
from notifier.rules._text import contains, tokens

__all__ = ["lint"]

_KEYWORD_LISTS = ("keywords", "keywords_all", "exclude_keywords")


def lint(rules: Sequence[Rule], file: str) -> list[Problem]:
    """Every warning about ``rules`` (read from ``file``), in rule order."""
    out: list[Problem] = []
    for i, rule in enumerate(rules):
        for key, message in _rule_warnings(rule):
            out.append(Problem(file, rule.line, f"rules[{i}].{key}", message))
    return out


def _rule_warnings(rule: Rule) -> Iterator[tuple[str, str]]:
    for key in _KEYWORD_LISTS:
        yield from _keyword_list(key, getattr(rule, key), keep_longer=key == "keywords_all")
    yield from _never(rule)


def _keyword_list(key: str, keywords: tuple[str, ...],
                  keep_longer: bool) -> Iterator[tuple[str, str]]:
    """Wordless, duplicate and shadowed keywords of one list."""
    seen: dict[tuple[str, ...], str] = {}
    for keyword in keywords:
        toks = tuple(tokens(keyword))
        if not toks:
            yield key, f"{keyword!r} has no letters or digits, so it never matches"
        elif toks in seen:
            yield key, f"{keyword!r} is the same keyword as {seen[toks]!r} once normalised"
        else:
            seen[toks] = keyword
    for long, long_kw in seen.items():
        for short, short_kw in seen.items():
            if long != short and contains(long, short):
                weaker, stronger = (short_kw, long_kw) if keep_longer else (long_kw, short_kw)
                yield key, (f"{weaker!r} is shadowed by {stronger!r}: wherever "
                            f"{long_kw!r} appears, {short_kw!r} does too; remove {weaker!r}")


def _never(rule: Rule) -> Iterator[tuple[str, str]]:
    """Combinations of conditions no message can satisfy."""
    excluded = [(kw, tokens(kw)) for kw in rule.exclude_keywords if tokens(kw)]
    for kw in rule.keywords_all:
        toks = tokens(kw)
        if not toks:
            yield "keywords_all", "the rule never matches: a required keyword has no words"
        for ex, ex_toks in excluded:
            if toks and contains(toks, ex_toks):
                yield "exclude_keywords", (f"the rule never matches: {kw!r} is required but "
                                           f"contains the excluded {ex!r}")
    wordy = [tokens(kw) for kw in rule.keywords if tokens(kw)]
    if rule.keywords and not wordy:
        yield "keywords", "the rule never matches: none of its keywords has words"
    elif wordy and excluded and all(any(contains(t, e) for _, e in excluded) for t in wordy):
        yield "exclude_keywords", ("the rule never matches: each of its keywords contains an "
                                   "excluded keyword")
    if rule.users is not None and rule.exclude_users and rule.users <= rule.exclude_users:
        yield "exclude_users", "the rule never matches: every user it names is excluded"
    if rule.has_links is False and rule.link_type:
        yield "link_type", "the rule never matches: has_links is false but link_type needs one"
