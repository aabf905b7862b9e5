"""Rule matching: conditions AND, list values OR, keywords whole-word and case-insensitive."""

from __future__ import annotations

import pytest

from notifier.config import Rule
from notifier.rules import compile_rules

ROOM = frozenset({"rm_1", "support-42"})


def message(body: str = "", *, message_type: str = "user", user_type: str = "member") -> dict:
    return {"id": "msg_1", "body": body, "messageType": message_type, "userType": user_type,
            "roomID": "rm_1", "createdAt": "2026-11-25T10:00:00Z",
            "editedAt": "0001-01-01T00:00:00Z"}


@pytest.mark.parametrize(("keywords", "body", "expected"), [
    (("refund",), "REFUND!!", True),
    (("refund",), "I want a refund, please", True),
    (("refund",), "it was refunded", False),
    (("refund",), "prerefund", False),
    (("cancel my account",), "Please CANCEL  my\naccount now", True),
    (("cancel my account",), "cancel my accounts", False),
    (("cancel my account",), "cancel the account", False),
    (("refund", "urgent"), "this is Urgent", True),
    (("straße",), "STRASSE closed", True),
    (("ｒｅｆｕｎｄ",), "refund", True),
    (("refund",), "ｒｅｆｕｎｄ please", True),
    (("refund",), "", False),
])
def test_keywords_match_whole_words_case_insensitively(keywords, body, expected):
    """A keyword matches whole words or phrases, ignoring case and Unicode width."""
    matcher = compile_rules([Rule(name="r", notify=("w",), keywords=keywords)])
    assert (matcher.match(message(body), "message.created", ROOM) == ("r",)) is expected


@pytest.mark.parametrize(("rule", "msg", "kind", "expected"), [
    (Rule("r", ("w",), message_type=frozenset({"user"})), message("x"), "message.created", True),
    (Rule("r", ("w",), message_type=frozenset({"system"})), message("x"), "message.created",
     False),
    (Rule("r", ("w",), user_type=frozenset({"admin", "member"})), message("x"),
     "message.created", True),
    (Rule("r", ("w",), user_type=frozenset({"admin"})), message("x"), "message.created", False),
    (Rule("r", ("w",), rooms=frozenset({"support-42"})), message("x"), "message.created", True),
    (Rule("r", ("w",), rooms=frozenset({"rm_other"})), message("x"), "message.created", False),
    (Rule("r", ("w",), events=frozenset({"created"})), message("x"), "message.edited", False),
    (Rule("r", ("w",), events=frozenset({"edited"})), message("x"), "message.edited", True),
    (Rule("r", ("w",), user_type=frozenset({"member"}), keywords=("refund",)),
     message("refund", user_type="admin"), "message.created", False),
])
def test_conditions_combine_with_and(rule, msg, kind, expected):
    """Every stated condition must hold; an omitted one constrains nothing."""
    assert (compile_rules([rule]).match(msg, kind, ROOM) == ("r",)) is expected


def test_every_matching_rule_is_listed_in_config_order():
    """All rules that match are returned, in the order they were written."""
    rules = [
        Rule("urgent", ("a",), keywords=("urgent",)),
        Rule("never", ("a",), keywords=("zebra",)),
        Rule("refunds", ("b",), keywords=("refund",)),
        Rule("all", ("c",)),
    ]
    got = compile_rules(rules).match(message("URGENT refund"), "message.created", ROOM)
    assert got == ("urgent", "refunds", "all")


def test_shared_keyword_prefix_does_not_hide_the_shorter_keyword():
    """'cancel' and 'cancel my account' both match the same words."""
    rules = [Rule("long", ("a",), keywords=("cancel my account",)),
             Rule("short", ("a",), keywords=("cancel",))]
    got = compile_rules(rules).match(message("cancel my account"), "message.created", ROOM)
    assert got == ("long", "short")
