"""The full rule language: keyword sets, exclusions, regex, links, users, Unicode words."""

from __future__ import annotations

import random

import pytest

from notifier.config import Rule
from notifier.rules import RuleMatch, compile_rules, lint, tokens

ROOM = frozenset({"rm_1", "support-42"})
USER = "usr_alice"


def message(body: str = "", *, links: list | None = None, user: str = USER,
            room: str = "rm_1") -> dict:
    return {"id": "msg_1", "body": body, "messageType": "user", "userType": "member",
            "userID": user, "roomID": room, "links": links or [],
            "createdAt": "2026-11-25T10:00:00Z", "editedAt": "0001-01-01T00:00:00Z"}


def matches(rule: Rule, msg: dict, rooms: frozenset[str] = ROOM) -> bool:
    return compile_rules([rule]).match(msg, "message.created", rooms) == (rule.name,)


def r(**kwargs) -> Rule:
    return Rule("r", ("w",), **kwargs)


@pytest.mark.parametrize(("rule", "body", "expected"), [
    (r(keywords_all=("refund", "order")), "refund my ORDER", True),
    (r(keywords_all=("refund", "order")), "refund please", False),
    (r(keywords_all=("refund", "cancel my account")), "cancel my account and refund", True),
    (r(keywords=("refund",), exclude_keywords=("test",)), "refund test", False),
    (r(keywords=("refund",), exclude_keywords=("test",)), "refund testing", True),
    (r(exclude_keywords=("spam",)), "hello", True),
    (r(exclude_keywords=("spam",)), "SPAM!", False),
    (r(regex=(r"order #?\d{5}",)), "Where is Order #12345?", True),
    (r(regex=(r"order #?\d{5}",)), "order 123", False),
    (r(regex=(r"^hi\b", r"\bbye$")), "ok bye", True),
    (r(regex=(r"[A-Z]{3}-\d+",)), "ticket abc-42", True),
    (r(regex=(r"strasse",)), "Straße", True),
    (r(keywords=("refund",), regex=(r"\d+",)), "refund", False),
])
def test_text_conditions(rule, body, expected):
    """keywords_all needs every keyword, exclude_keywords none, regex any pattern."""
    assert matches(rule, message(body)) is expected


@pytest.mark.parametrize(("keyword", "body", "expected"), [
    ("ﬁne", "fine print", True),             # ligature
    ("fine", "ﬁne print", True),
    ("straße", "STRASSE", True),             # German sharp s
    ("STRASSE", "straße", True),
    ("ｒｅｆｕｎｄ", "Refund", True),           # full-width Latin
    ("café", "CAFE\u0301 open", True),        # combining accent == precomposed
    ("refund", "退款refund请求", True),        # Latin next to Han: a script boundary
    ("refund", "refund🙂", True),             # emoji is not a letter
    ("refund", "🙂refund🙂", True),
    ("refund", "refund_policy", True),        # '_' separates words
    ("退款", "我要退款了", True),              # Han matches as a substring
    ("退款", "退 款", True),                   # spaces between Han characters are ignored
    ("退款", "退货", False),
    ("ありがとう", "どうもありがとうございます", True),  # Hiragana too
    ("ｶﾀｶﾅ", "カタカナです", True),            # half-width Katakana after NFKC
    ("ขอบคุณ", "ขอบคุณครับ", True),            # Thai has no spaces either
    ("हिन्दी", "मैं हिन्दी बोलता हूँ", True),   # Devanagari marks stay inside a word
    ("हिन", "हिन्दी", False),
    ("привет", "ПРИВЕТ, мир", True),
    ("привет", "приветствую", False),
    ("refund", "refunded", False),
])
def test_unicode_word_boundaries(keyword, body, expected):
    """Whole words are Unicode-aware; unspaced scripts match character by character."""
    assert matches(r(keywords=(keyword,)), message(body)) is expected


@pytest.mark.parametrize(("rule", "msg", "expected"), [
    (r(has_links=True), message("x", links=[{"id": "lnk_1", "type": "image", "url": "u"}]),
     True),
    (r(has_links=True), message("x"), False),
    (r(has_links=False), message("x"), True),
    (r(link_type=frozenset({"image"})), message("x", links=[{"type": "image"}]), True),
    (r(link_type=frozenset({"image"})), message("x", links=[{"type": "video"}]), False),
    (r(users=frozenset({USER})), message("x"), True),
    (r(users=frozenset({"usr_bob"})), message("x"), False),
    (r(exclude_users=frozenset({USER})), message("x"), False),
    (r(exclude_users=frozenset({"usr_bob"})), message("x"), True),
    (r(rooms=frozenset({"rm_1"})), message("x"), True),
    (r(rooms=frozenset({"support-42"})), message("x"), True),
])
def test_link_user_and_room_conditions(rule, msg, expected):
    """Links, users and rooms (by id or key) are conditions like any other."""
    assert matches(rule, msg) is expected


def test_a_room_configured_by_key_matches_a_rule_naming_its_id():
    """The message's roomID counts as one of its room's names."""
    rule = r(rooms=frozenset({"rm_9"}))
    assert matches(rule, message("x", room="rm_9"), rooms=frozenset({"support-42"}))


def test_explain_names_the_keywords_and_patterns_that_matched():
    """explain lists, per matched rule, the keywords as written and the patterns found."""
    matcher = compile_rules([
        Rule("refunds", ("w",), keywords=("Refund", "chargeback"), regex=(r"order \d+",)),
        Rule("both", ("w",), keywords_all=("refund", "order")),
        Rule("other", ("w",), keywords=("zebra",)),
    ])
    got = matcher.explain(message("REFUND for order 42"), "message.created", ROOM)
    assert got == (RuleMatch("refunds", ("Refund",), (r"order \d+",)),
                   RuleMatch("both", ("refund", "order"), ()))


def test_why_not_names_the_first_failing_condition():
    """why_not says which condition stopped a rule, and None when it matches."""
    matcher = compile_rules([Rule("r", ("w",), user_type=frozenset({"admin"}),
                                  keywords=("refund",))])
    assert matcher.why_not("r", message("refund"), "message.created", ROOM) == "user_type"
    admin = {**message("refund"), "userType": "admin"}
    assert matcher.why_not("r", admin, "message.created", ROOM) is None


def _naive(rules: list[Rule], body: str) -> tuple[str, ...]:
    words = " ".join(tokens(body))
    return tuple(rule.name for rule in rules
                 if any(f" {' '.join(tokens(k))} " in f" {words} " for k in rule.keywords))


def test_indexed_matcher_agrees_with_a_naive_loop_over_many_rules():
    """With 500 rules sharing words, the index finds exactly what a per-rule loop finds."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(300)]
    rules = [Rule(f"r{i}", ("w",), keywords=tuple(
        " ".join(rng.sample(vocab, rng.choice((1, 1, 2)))) for _ in range(3)))
        for i in range(500)]
    matcher = compile_rules(rules)
    for _ in range(200):
        body = " ".join(rng.choice(vocab) for _ in range(12))
        assert matcher.match(message(body), "message.created", ROOM) == _naive(rules, body)


@pytest.mark.parametrize(("rule", "fragment"), [
    (r(keywords=("refund", "refund please")), "'refund please' is shadowed by 'refund'"),
    (r(keywords=("Refund", "refund")), "same keyword"),
    (r(keywords_all=("refund", "refund please")), "'refund' is shadowed by 'refund please'"),
    (r(keywords=("!!!",)), "never matches"),
    (r(keywords_all=("scam alert",), exclude_keywords=("scam",)), "never matches"),
    (r(keywords=("scam alert", "scam"), exclude_keywords=("scam",)), "never matches"),
    (r(users=frozenset({USER}), exclude_users=frozenset({USER})), "never matches"),
    (r(has_links=False, link_type=frozenset({"image"})), "never matches"),
])
def test_lint_warns_about_rules_that_cannot_do_what_they_say(rule, fragment):
    """Shadowed, duplicate and wordless keywords and impossible rules are warned about."""
    warnings = lint([rule], "rules.yaml")
    assert any(fragment in w.message for w in warnings), warnings


def test_lint_is_silent_about_sound_rules():
    """A rule whose keywords are independent gets no warning."""
    assert lint([r(keywords=("refund", "chargeback"), exclude_keywords=("test",))], "f") == []
