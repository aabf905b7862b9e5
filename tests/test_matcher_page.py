"""``Matcher.match_page``: a page's matches are exactly what ``match`` gives each message
alone, whichever shortcut the page takes (one search of its ASCII text, or each message
matched)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.config import Rule
from notifier.rules import Matcher, compile_rules
from notifier.util.json import dumps_bytes, loads
from tests.test_properties import RULES, TEXT

KINDS = ("message.created", "message.edited")
ROOMS = {"rm_1", "support"}

#: ASCII keywords, some sharing a first token, phrases among them.
WORDS = ["refund", "cancel", "cancel my account", "x 2", "urgent", "order", "my", "2"]
ASCII_BODY = st.lists(st.sampled_from([*WORDS, "hello", "REFUND!", "refunded", "x2", "\n",
                                       "my-account", "cancel-my", "\x00", "a\x00refund"]),
                      max_size=6).map(" ".join)
#: Bodies: ASCII word salads, any text (non-ASCII too), none, no string at all.
BODY = ASCII_BODY | TEXT | st.sampled_from([None, "", 7, 0, ["refund"], {"b": "refund"}])


@st.composite
def _rules(draw: st.DrawFn) -> list[Rule]:
    """Rules with keywords (the page shortcut applies), sometimes with more conditions,
    and sometimes the generated kinds of tests.test_properties (some without keywords)."""
    keyworded = draw(st.lists(st.builds(
        lambda i, kw, kinds, mtype: Rule(name=f"k{i}", notify=("w",), keywords=kw,
                                         events=kinds, message_type=mtype),
        st.integers(0, 10**6), st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)
        .map(tuple), st.frozensets(st.sampled_from(["created", "edited"]), min_size=1),
        st.none() | st.just(frozenset({"user"}))), min_size=1, max_size=4))
    other = draw(st.lists(RULES, max_size=2) if draw(st.booleans()) else st.just([]))
    names = {r.name for r in keyworded}
    return keyworded + [r for r in other if r.name not in names]


def _page(bodies: list[Any]) -> list[dict[str, Any]]:
    page = []
    for i, body in enumerate(bodies):
        msg = {"id": f"msg_{i}", "body": body, "roomID": "rm_1", "messageType": "user"}
        if body is None and i % 2:
            del msg["body"]
        page.append(msg)
    return page


def _one_by_one(matcher: Matcher, page: list[Any], kind: str) -> list[tuple[int, Any]]:
    return [(i, r) for i, m in enumerate(page) if (r := matcher.match(m, kind, ROOMS))]


@given(_rules(), st.lists(BODY, max_size=12), st.sampled_from(KINDS), st.booleans())
def test_a_page_matches_as_its_messages_do_one_by_one(rules: list[Rule], bodies: list[Any],
                                                      kind: str, wire: bool) -> None:
    """Any rules, any bodies (ASCII or not, missing, not strings); ``wire``: the page
    decoded from JSON, its messages sharing key objects."""
    page = _page(bodies)
    if wire:
        page = loads(dumps_bytes(page))
    matcher = compile_rules(rules)
    assert matcher.match_page(page, kind, ROOMS) == _one_by_one(matcher, page, kind)


@pytest.mark.parametrize("bodies", [
    ["refund", "refund"], ["x", "refund", "refund refund", "refund"],
    ["cancel", "my account"], ["cancel my", "account"], ["re", "fund"], ["", "refund", ""],
    ["caf\u00e9 refund", "refund", "\u9000\u6b3e"], [None, "refund", 7, "refund"],
    ["refund."] * 3, ["ReFuNd"], [], ["x\x00", "refund", "\x00refund", "refund\x00 x"],
    ["refund", "\x00", "x", "refund"],
], ids=["adjacent", "repeats", "phrase-split", "phrase-split-2", "word-split", "empties",
        "non-ascii", "no-strings", "punctuation", "case", "no-messages", "nul-in-bodies",
        "nul-alone"])
def test_words_at_the_edges_of_messages_belong_to_their_own(bodies: list[Any]) -> None:
    """A keyword ending one message and one starting the next are two hits; a word or
    phrase cut between two messages is none."""
    matcher = compile_rules([Rule("r", ("w",), keywords=("refund", "cancel my account"))])
    page = _page(bodies)
    for kind in KINDS:
        assert matcher.match_page(page, kind, ROOMS) == _one_by_one(matcher, page, kind)


def test_a_page_with_many_keywords_present_matches_the_same() -> None:
    """More distinct keywords on a page than are searched for one by one: the same."""
    words = [f"w{i}" for i in range(20)]
    matcher = compile_rules([Rule(f"r{i}", ("w",), keywords=(w,)) for i, w in enumerate(words)])
    page = _page([f"{w} and {words[-i]}" for i, w in enumerate(words)] + ["none here"])
    found = matcher.match_page(page, "message.created", ROOMS)
    assert found == _one_by_one(matcher, page, "message.created")
    assert len(found) == len(words)


def test_a_rule_without_keywords_still_sees_every_message() -> None:
    """A rule that sets no keyword is checked on every message, also those holding no
    keyword of the others."""
    matcher = compile_rules([Rule("kw", ("w",), keywords=("refund",)),
                             Rule("typed", ("w",), message_type=frozenset({"user"}))])
    page = _page(["hello", "refund", None, "caf\u00e9"])
    found = matcher.match_page(page, "message.created", ROOMS)
    assert found == _one_by_one(matcher, page, "message.created")
    assert [i for i, _ in found] == [0, 1, 2, 3]
