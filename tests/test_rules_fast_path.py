"""The matcher's shortcuts give the answers of the long way round.

Two shortcuts make ``match`` fast (bench/rules_bench.py): ASCII text skips Unicode
normalisation and the Unicode tokenizer, and rules that set only keywords are decided by
set operations on a message's tokens instead of condition by condition. Each is compared
here with the path it skips.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.config import Rule
from notifier.rules import Matcher, compile_rules
from notifier.rules._text import normalize, token_keys, unicode_normalize, unicode_token_keys

ROOMS = frozenset({"rm_1", "support"})
ASCII = st.text(st.characters(max_codepoint=127), max_size=40)
WORDS = ["refund", "Refund", "REFUND!", "cancel", "my", "account", "x2", "2x", "_x_",
         "order#123", "o'neil", "e-mail", "straße", "ｒｅｆｕｎｄ", "退款"]
ASCII_BODY = st.lists(st.sampled_from([w for w in WORDS if w.isascii()]) | ASCII,
                      max_size=10).map(" ".join)
#: Bodies made of the keywords' own words, so that phrases often half-match.
NEAR_MISS = st.lists(st.sampled_from(["cancel", "my", "account", "refund", "x", "2", "e",
                                      "mail", ",", "Cancel"]), max_size=8).map(" ".join)
KEYWORD = st.sampled_from([*WORDS, "cancel my account", "cancel my", "my account", "refund refund",
                           "x 2", "e mail", "!!"])
OPTIONAL = lambda values: st.none() | st.frozensets(st.sampled_from(values), min_size=1)  # noqa: E731
MIXED_RULE = st.builds(
    lambda i, **kw: Rule(f"r{i}", ("w",), **kw), st.integers(0, 10**6),
    events=st.frozensets(st.sampled_from(["created", "edited"]), min_size=1),
    rooms=OPTIONAL(["rm_1", "support", "rm_2"]),
    users=OPTIONAL(["usr_a", "usr_b"]),
    keywords=st.lists(KEYWORD, max_size=3).map(tuple),
    keywords_all=st.lists(KEYWORD, max_size=2).map(tuple),
    exclude_keywords=st.lists(KEYWORD, max_size=2).map(tuple),
    regex=st.lists(st.sampled_from([r"\d+", r"^refund", r"account$", r"[A-Z]"]),
                   max_size=1).map(tuple),
)
#: Rules that set only keywords (and events): the ones the plan settles outright.
KEYWORD_RULE = st.builds(
    lambda i, **kw: Rule(f"k{i}", ("w",), **kw), st.integers(0, 10**6),
    events=st.frozensets(st.sampled_from(["created", "edited"]), min_size=1),
    keywords=st.lists(KEYWORD, min_size=1, max_size=3).map(tuple),
)
RULES = st.lists(KEYWORD_RULE | MIXED_RULE, min_size=1, max_size=8,
                 unique_by=lambda rule: rule.name)


def message(body: str, user: str = "usr_a", room: str = "rm_1") -> dict:
    return {"id": "msg_1", "body": body, "userID": user, "roomID": room}


@pytest.mark.parametrize("length", [1, 2])
def test_every_short_ascii_string_normalises_and_splits_alike_both_ways(length):
    """For every ASCII string of one or two characters the shortcut equals the full path."""
    for chars in itertools.product(map(chr, range(128)), repeat=length):
        text = "".join(chars)
        assert normalize(text) == unicode_normalize(text), repr(text)
        assert token_keys(text) == unicode_token_keys(text), repr(text)


#: These properties are cheap: more examples than the suite's profile gives, for coverage.
MANY = settings(max_examples=300, deadline=None)


@MANY
@given(text=ASCII | ASCII_BODY)
def test_ascii_text_normalises_and_splits_alike_both_ways(text):
    """Lower-casing and a byte split give what NFKC, case-folding and the tokenizer give."""
    assert normalize(text) == unicode_normalize(text)
    assert token_keys(text) == unicode_token_keys(text)


@MANY
@given(rules=RULES, body=ASCII_BODY | NEAR_MISS, kind=st.sampled_from(["message.created",
                                                            "message.edited"]))
def test_ascii_messages_match_the_same_with_the_fast_path_off(rules, body, kind):
    """On ASCII bodies, the ASCII shortcut names exactly the rules the Unicode path names."""
    msg = message(body)
    fast = compile_rules(rules).match(msg, kind, ROOMS)
    assert fast == Matcher(rules, ascii_fast_path=False).match(msg, kind, ROOMS)


@MANY
@given(rules=RULES, body=NEAR_MISS | st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join),
       user=st.sampled_from(["usr_a", "usr_b", "usr_c"]), room=st.sampled_from(["rm_1", "rm_2"]),
       kind=st.sampled_from(["message.created", "message.edited"]))
def test_match_names_the_rules_that_explain_checks_condition_by_condition(
        rules, body, user, room, kind):
    """The per-kind plan (outright, nominated, always) agrees with checking every condition."""
    matcher, msg = compile_rules(rules), message(body, user, room)
    expected = tuple(m.rule for m in matcher.explain(msg, kind, {"support"}))
    assert matcher.match(msg, kind, {"support"}) == expected


@pytest.mark.parametrize(("body", "expected"), [
    ("Please cancel my account", ("phrase", "either")),
    ("cancel, my. account!", ("phrase", "either")),        # separators between words
    ("cancel the account; my account", ("either",)),        # not consecutive
    ("my account: cancel my account", ("phrase", "either")),  # the phrase's second place
    ("cancelmy account", ()),                               # not whole words
    ("precancel my accounts", ()),
    ("CANCEL MY ACCOUNT", ("phrase", "either")),
    ("cancel", ("either",)),
    ("cancel my order", ("either",)),                       # the phrase's start only
    ("", ()),
])
def test_phrases_match_only_as_consecutive_whole_words(body, expected):
    """A phrase is found wherever its words stand next to each other, and nowhere else."""
    rules = [Rule("phrase", ("w",), keywords=("cancel my account",)),
             Rule("either", ("w",), keywords=("cancel", "my account"))]
    assert compile_rules(rules).match(message(body), "message.created", ROOMS) == expected


@pytest.mark.parametrize(("kind", "room", "user", "expected"), [
    ("message.created", "rm_1", "usr_a", ("any-room", "support-only", "no-keywords")),
    ("message.created", "rm_2", "usr_a", ("any-room", "no-keywords")),
    ("message.created", "rm_1", "usr_b", ("any-room", "support-only")),
    ("message.edited", "rm_1", "usr_a", ("edits", "support-only", "no-keywords")),
    ("webhook.disabled", "rm_1", "usr_a", ()),
])
def test_rules_sharing_a_keyword_are_decided_by_their_own_conditions(kind, room, user, expected):
    """A keyword settles keyword-only rules; rooms, users and events still decide the rest."""
    rules = [Rule("any-room", ("w",), events=frozenset({"created"}), keywords=("refund",)),
             Rule("edits", ("w",), events=frozenset({"edited"}), keywords=("refund",)),
             Rule("support-only", ("w",), rooms=frozenset({"rm_1"}), keywords=("refund",)),
             Rule("no-keywords", ("w",), exclude_users=frozenset({"usr_b"}))]
    msg = message("a Refund, please", user, room)
    assert compile_rules(rules).match(msg, kind, set()) == expected
