"""Rule tooling as operators run it: check warnings, test-rules, rule unit tests, backtest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier.testing import Fault
from tests.conftest import SECRET, TEST_ENV, config_text
from tests.test_cli import REPO, run_cli

SHIPPED_ENV = {"ROOMLIO_API_KEY": "k", "CRM_WEBHOOK_SECRET": SECRET,
               "MOD_WEBHOOK_SECRET": SECRET}
RULES = [
    {"name": "refunds", "keywords": ["refund", "cancel my account"], "notify": ["crm"]},
    {"name": "orders", "keywords_all": ["order", "late"], "exclude_keywords": ["test"],
     "regex": [r"#\d{5}"], "notify": ["crm"]},
    {"name": "pictures", "link_type": ["image"], "notify": ["mod"]},
    {"name": "edits", "events": ["edited"], "keywords": ["lawyer"], "notify": ["mod"]},
]


def write_config(tmp_path: Path, rules: list | None = None, *,
                 emulator_url: str = "http://127.0.0.1:1/rpc", page_size: int = 50) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(config_text(emulator_url, "http://127.0.0.1:2", rooms=["support"],
                                roomlio={"page_size": page_size},
                                rules=rules if rules is not None else RULES))
    return str(path)


async def test_shipped_rule_cases_pass_against_the_shipped_rules():
    """rules.cases.yaml next to rules.yaml passes: the example rules do what they say."""
    code, out, err = await run_cli("test-rules", "--config", str(REPO / "rules.yaml"),
                                   "--cases", str(REPO / "rules.cases.yaml"), env=SHIPPED_ENV)
    assert (code, err) == (0, ""), out
    assert "0 failed" in out and "FAIL" not in out


async def test_test_rules_prints_each_message_with_the_rules_and_words_that_matched(tmp_path):
    """Each message line names the matching rules and the keyword or pattern behind each."""
    config = write_config(tmp_path)
    messages = tmp_path / "messages.jsonl"
    messages.write_text('{"id": "msg_a", "body": "REFUND please"}\n\n'
                        '{"id": "msg_b", "body": "order #12345 is late"}\n'
                        '{"id": "msg_c", "body": "hello"}\n')
    code, out, err = await run_cli("test-rules", "--config", config, str(messages), env=TEST_ENV)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "msg_a: refunds (keywords: refund)",
        r"msg_b: orders (keywords: order, late; regex: /#\d{5}/)",
        "msg_c: no rule",
    ]


async def test_test_rules_json_reads_an_array_and_lists_webhooks(tmp_path):
    """--json prints one object a line with rules, keywords, patterns and webhooks."""
    config = write_config(tmp_path)
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps([{"id": "msg_p", "links": [{"type": "image"}]},
                                    {"id": "msg_q", "body": "cancel  my ACCOUNT"}]))
    code, out, err = await run_cli("test-rules", "-c", config, str(messages), "--json",
                                   env=TEST_ENV)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [
        {"id": "msg_p", "matches": [{"rule": "pictures", "keywords": [], "patterns": [],
                                     "webhooks": ["mod"]}]},
        {"id": "msg_q", "matches": [{"rule": "refunds", "keywords": ["cancel my account"],
                                     "patterns": [], "webhooks": ["crm"]}]},
    ]


async def test_failing_rule_case_exits_1_with_a_readable_diff(tmp_path):
    """A case whose expectations fail prints what differs and why, and exits 1."""
    config = write_config(tmp_path)
    cases = tmp_path / "cases.yaml"
    cases.write_text("- name: passes\n  message: {body: refund}\n  match: [refunds]\n"
                     "- name: wrong\n  message: {body: refund, userType: admin}\n"
                     "  match: [orders]\n  no_match: [refunds]\n"
                     "- name: edit only\n  message: {body: my lawyer}\n  match: [edits]\n")
    code, out, _ = await run_cli("test-rules", "-c", config, "--cases", str(cases),
                                 env=TEST_ENV)
    assert code == 1
    assert f"ok    {cases}:1: passes" in out
    assert f"FAIL  {cases}:4: wrong" in out
    assert "- expected orders to match; it did not (failed: keywords_all)" in out
    assert "+ expected refunds not to match; it did (keywords: refund)" in out
    assert "- expected edits to match; it did not (failed: events)" in out
    assert "1 passed, 2 failed" in out


async def test_rule_cases_naming_unknown_rules_are_reported_with_their_line(tmp_path):
    """A case file mistake is a file:line problem and exit 2, not a traceback."""
    config = write_config(tmp_path)
    cases = tmp_path / "cases.yaml"
    cases.write_text("- message: {body: x}\n  match: [refundz]\n- mesage: {}\n")
    code, out, err = await run_cli("test-rules", "-c", config, "--cases", str(cases),
                                   env=TEST_ENV)
    assert code == 2, out
    assert f"{cases}:2: [0].match: unknown rule 'refundz'" in err
    assert "[1].mesage: unknown key" in err and "Traceback" not in err


@pytest.mark.parametrize(("rule", "fragment"), [
    ({"regex": ["order (\\d+"]}, "rules[0].regex: rule 'bad': invalid regex 'order (\\\\d+'"),
    ({"users": ["alice"]}, "must be a Roomlio user id"),
    ({"link_type": ["video"]}, "unknown link type 'video'"),
    ({"has_links": "maybe"}, "must be true or false"),
    ({"keyword_all": ["x"]}, "did you mean 'keywords_all'"),
])
async def test_check_refuses_bad_rule_keys_naming_rule_and_value(tmp_path, rule, fragment):
    """Invalid regexes, user ids, link types and typos are check errors with the fix."""
    config = write_config(tmp_path, [{"name": "bad", "notify": ["crm"], **rule}])
    code, _, err = await run_cli("check", "--config", config, env=TEST_ENV)
    assert code == 2
    assert fragment in err, err


async def test_check_warns_without_failing_on_rules_that_cannot_match(tmp_path):
    """Shadowed keywords and impossible rules are warnings; the config is still OK."""
    config = write_config(tmp_path, [
        {"name": "shadow", "keywords": ["refund", "refund please"], "notify": ["crm"]},
        {"name": "never", "keywords_all": ["scam alert"], "exclude_keywords": ["scam"],
         "notify": ["mod"]},
        {"name": "fine", "keywords": ["refund"], "notify": ["crm"]},
    ])
    code, out, err = await run_cli("check", "--config", config, env=TEST_ENV)
    assert code == 0 and "OK" in out
    warnings = err.strip().splitlines()
    assert len(warnings) == 2, err
    assert warnings[0].startswith("warning: ") and "rules[0].keywords" in warnings[0]
    assert "rules[1].exclude_keywords: the rule never matches" in warnings[1]


async def test_backtest_reports_history_per_rule_and_webhook_without_side_effects(
        tmp_path, emulator, receiver):
    """backtest pages through history (with retries), counts, samples, never delivers."""
    now = datetime.now(UTC)
    emulator.add_room(key="support")
    emulator.post("support", "refund from long ago", created_at=now - timedelta(days=9))
    for i in range(5):
        emulator.post("support", f"refund number {i}", created_at=now - timedelta(days=2))
    emulator.post("support", "order #12345 is late", created_at=now - timedelta(days=1))
    edited = emulator.post("support", "hello", created_at=now - timedelta(hours=1))
    emulator.edit(edited["id"], "talk to my lawyer")
    emulator.inject(Fault.status(503), times=1)
    config = write_config(tmp_path, emulator_url=emulator.url, page_size=2)
    code, out, err = await run_cli("backtest", "--config", config, "--since", "7d", "--json",
                                   env=TEST_ENV)
    assert code == 0, err
    report = json.loads(out)
    assert report["messages"] == 7
    assert {k: v["matches"] for k, v in report["rules"].items()} == {
        "refunds": 5, "orders": 1, "pictures": 0, "edits": 1}
    assert report["webhooks"] == {"crm": 6, "mod": 1}
    assert report["never_matched"] == ["pictures"]
    assert report["rules"]["pictures"]["stopped_by"] == {"link_type": 8}  # 7 + 1 edited
    assert len(report["rules"]["refunds"]["samples"]) == 3
    assert report["rules"]["edits"]["samples"][0]["kind"] == "message.edited"
    assert sum(r.status == 503 for r in emulator.requests) == 1
    assert len(emulator.requests) >= 5  # 7 messages at 2 a page, plus the retried one
    assert receiver.received == []
    assert not (tmp_path / "state.db").exists()


async def test_backtest_text_report_and_room_filter(tmp_path, emulator):
    """--room narrows the history; the text report shows counts, samples and warnings."""
    emulator.add_room(key="support")
    emulator.add_room(key="other")
    emulator.post("support", "a refund please")
    emulator.post("other", "refund elsewhere")
    config = write_config(tmp_path, emulator_url=emulator.url)
    code, out, err = await run_cli("backtest", "-c", config, "--since", "1h", "--room", "other",
                                   env=TEST_ENV)
    assert code == 0, err
    assert "1 message(s) read; nothing was delivered" in out
    assert "other" in out and "refund elsewhere" in out and "a refund please" not in out
    assert "crm: 1" in out and "never matched in this history: orders, pictures, edits" in out
    assert "pictures: most often stopped by link_type (100%)" in out
    assert "edits: most often stopped by events (100%)" in out
