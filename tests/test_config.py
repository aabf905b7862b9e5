"""rules.yaml loading: the right dataclasses for a good file, one located Problem per mistake."""

from __future__ import annotations

import base64
import ipaddress
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.config import (
    Config,
    DeliverySettings,
    Room,
    Rule,
)
from notifier.config.fields import parse_duration
from notifier.delivery.formats import FORMATS, check_config, load_config
from notifier.delivery.formats import FORMATS as IMPLEMENTED_FORMATS
from notifier.errors import ConfigError, Problem
from notifier.util.netguard import is_private_address

KEY_BYTES = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY_BYTES).decode()
OLD_KEY_BYTES = bytes(range(100, 124))
OLD_SECRET = "whsec_" + base64.b64encode(OLD_KEY_BYTES).decode()
API_KEY = "rk_live_do-not-print-me"
TOKEN = "tok_header_do-not-print-me"
ENV = {
    "ROOMLIO_API_KEY": API_KEY,
    "CRM_SECRET": SECRET,
    "OLD_SECRET": OLD_SECRET,
    "CRM_TOKEN": TOKEN,
}

FULL = """\
roomlio:
  base_url: https://api.roomlio.com/rpc
  api_key: ${ROOMLIO_API_KEY}
  poll_interval: 250ms
  page_size: 50
  start_from: 2024-05-01T12:00:00+02:00
  edit_lookback: 0
  edit_scan_interval: 1.5s
  request_timeout: 1m
rooms:
  - id: rm_bvr0h6tnf4q1u52mfit0
  - key: support-42
state: data/notifier.db
delivery:
  timeout: 3s
  max_attempts: 5
  max_backoff: 1h
  allow_private_urls: false
  max_in_flight: 4
  shutdown_grace: 2s
webhooks:
  crm:
    url: https://crm.example.com/hooks/roomlio
    secret: ["${CRM_SECRET}", "${OLD_SECRET}"]
    format: standard
    headers: {X-Api-Key: "${CRM_TOKEN}"}
    timeout: 20s
  slack.alerts:
    url: http://hooks.example.com/x
    max_attempts: 2
rules:
  - name: refunds
    events: [created]
    rooms: [rm_bvr0h6tnf4q1u52mfit0, support-42]
    message_type: [user]
    user_type: [member, embed]
    keywords: [refund, "cancel my account"]
    notify: [crm, slack.alerts]
  - name: urgent
    keywords: urgent
    notify: crm
"""

# Line numbers below refer to this file; each case edits one spot of it.
MINIMAL = """\
roomlio:
  base_url: https://api.roomlio.com/rpc
  api_key: ${ROOMLIO_API_KEY}
rooms:
  - id: rm_1
  - key: support-42
webhooks:
  crm:
    url: https://crm.example.com/hook
    secret: ${CRM_SECRET}
  slack:
    url: https://hooks.example.com/x
rules:
  - name: refunds
    keywords: [refund]
    notify: [crm]
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def edited(old: str, new: str, text: str = MINIMAL) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[Problem]:
    return check_config(write(tmp_path, text), ENV if env is None else env)


def test_full_config_loads_into_dataclasses(tmp_path: Path) -> None:
    """Every section of a valid file lands in the right field, with units converted."""
    config = load_config(write(tmp_path, FULL), ENV)
    assert isinstance(config, Config)
    settings_ = config.roomlio
    assert (settings_.base_url, settings_.api_key) == ("https://api.roomlio.com/rpc", API_KEY)
    assert (settings_.poll_interval, settings_.page_size) == (0.25, 50)
    assert settings_.start_from == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert (settings_.edit_lookback, settings_.edit_scan_interval) == (0.0, 1.5)
    assert settings_.request_timeout == 60.0
    assert config.rooms == (Room(id="rm_bvr0h6tnf4q1u52mfit0"), Room(key="support-42"))
    assert config.state == str(tmp_path / "data" / "notifier.db")
    assert config.delivery == DeliverySettings(timeout=3.0, max_attempts=5, max_backoff=3600.0,
                                               max_in_flight=4, shutdown_grace=2.0,
                                               retry_schedule=None)


def test_webhooks_merge_delivery_defaults_and_decode_secrets(tmp_path: Path) -> None:
    """A webhook's own settings win; the rest come from delivery; secrets become keys."""
    hooks = load_config(write(tmp_path, FULL), ENV).webhooks
    assert list(hooks) == ["crm", "slack.alerts"]
    crm, slack = hooks["crm"], hooks["slack.alerts"]
    assert crm.secrets == (KEY_BYTES, OLD_KEY_BYTES)
    assert (crm.timeout, crm.max_attempts, crm.max_backoff) == (20.0, 5, 3600.0)
    assert dict(crm.headers) == {"X-Api-Key": TOKEN}
    assert crm.format == "standard"
    assert (slack.url, slack.secrets, slack.timeout, slack.max_attempts) == (
        "http://hooks.example.com/x", (), 3.0, 2)
    assert (slack.max_in_flight, slack.allow_private_urls) == (4, False)


def test_rules_load_with_filters_defaults_and_lines(tmp_path: Path) -> None:
    """Rule fields are sets or tuples; a single string counts as a one-item list."""
    refunds, urgent = load_config(write(tmp_path, FULL), ENV).rules
    assert refunds == Rule(
        name="refunds", notify=("crm", "slack.alerts"), events=frozenset({"created"}),
        rooms=frozenset({"rm_bvr0h6tnf4q1u52mfit0", "support-42"}),
        message_type=frozenset({"user"}), user_type=frozenset({"member", "embed"}),
        keywords=("refund", "cancel my account"), line=32)
    assert urgent == Rule(name="urgent", notify=("crm",), keywords=("urgent",), line=39)
    assert urgent.events == frozenset({"created", "edited"})
    assert urgent.rooms is urgent.message_type is urgent.user_type is None


def test_minimal_config_uses_documented_defaults(tmp_path: Path) -> None:
    """Optional settings fall back to the dataclass defaults and state sits beside the file."""
    config = load_config(write(tmp_path, MINIMAL), ENV)
    assert config.roomlio.poll_interval == 5.0 and config.roomlio.start_from == "now"
    assert config.delivery == DeliverySettings()
    assert config.state == str(tmp_path / "notifier.db")
    assert check_config(write(tmp_path, MINIMAL), ENV) == []


def test_repo_example_rules_yaml_is_valid() -> None:
    """The commented rules.yaml shipped at the repository root loads."""
    example = Path(__file__).resolve().parent.parent / "rules.yaml"
    if not example.exists():
        pytest.skip("no rules.yaml at the repository root")
    env = {"ROOMLIO_API_KEY": API_KEY, "CRM_WEBHOOK_SECRET": SECRET, "MOD_WEBHOOK_SECRET": SECRET}
    assert check_config(str(example), env) == []


CASES = [
    # (id, old text, new text, line, key, message fragment)
    ("yaml-syntax", "  api_key: ${ROOMLIO_API_KEY}", "  api_key: a: b", 3, "",
     "YAML syntax error: mapping values are not allowed here"),
    ("yaml-unclosed-flow", "  - key: support-42", "  - key: [support-42", 7, "",
     "YAML syntax error"),
    ("unquoted-var-in-flow", "    secret: ${CRM_SECRET}", "    secret: [${CRM_SECRET}]", 10, "",
     'put ${VAR} in quotes: ["${VAR}"]'),
    ("unknown-top-key", "rules:", "rulez:", 13, "rulez",
     "unknown key 'rulez'; did you mean 'rules'? (known: roomlio, rooms, state,"),
    ("missing-top-key", "rules:", "rulez:", 1, "rules", "is required"),
    ("unknown-roomlio-key", "  api_key: ${ROOMLIO_API_KEY}",
     "  api_key: ${ROOMLIO_API_KEY}\n  poll_intrval: 5s", 4, "roomlio.poll_intrval",
     "did you mean 'poll_interval'?"),
    ("unknown-webhook-key", "    secret: ${CRM_SECRET}", "    secrets: ${CRM_SECRET}", 10,
     "webhooks.crm.secrets", "did you mean 'secret'?"),
    ("unknown-rule-key", "    keywords: [refund]", "    keyword: [refund]", 15,
     "rules[0].keyword", "did you mean 'keywords'?"),
    ("duplicate-key", "    keywords: [refund]", "    keywords: [refund]\n    keywords: [x]", 16,
     "rules[0].keywords", "duplicate key 'keywords' (first at line 15)"),
    ("unknown-webhook", "notify: [crm]", "notify: [crm, slakc]", 16, "rules[0].notify",
     "unknown webhook 'slakc' (known: crm, slack)"),
    ("unknown-webhook-block-list", "    notify: [crm]", "    notify:\n      - crm\n      - slakc",
     18, "rules[0].notify", "unknown webhook 'slakc' (known: crm, slack)"),
    ("notify-missing", "    notify: [crm]\n", "", 14, "rules[0].notify", "is required"),
    ("notify-empty", "notify: [crm]", "notify: []", 16, "rules[0].notify", "must not be empty"),
    ("notify-number", "notify: [crm]", "notify: 5", 16, "rules[0].notify",
     "must be a string or a list (got 5)"),
    ("keywords-mapping", "keywords: [refund]", "keywords: {a: 1}", 15, "rules[0].keywords",
     "must be a string or a list (got a mapping)"),
    ("keyword-empty", "keywords: [refund]", "keywords: [refund, '']", 15, "rules[0].keywords",
     "must not be empty"),
    ("duration-garbage", "  api_key: ${ROOMLIO_API_KEY}",
     "  api_key: ${ROOMLIO_API_KEY}\n  poll_interval: 5x", 4, "roomlio.poll_interval",
     "must be a duration like 250ms, 5s, 10m, 1h or a number of seconds (got '5x')"),
    ("duration-zero", "  api_key: ${ROOMLIO_API_KEY}",
     "  api_key: ${ROOMLIO_API_KEY}\n  poll_interval: 0s", 4, "roomlio.poll_interval",
     "must be greater than 0 (got '0s')"),
    ("duration-negative", "  api_key: ${ROOMLIO_API_KEY}",
     "  api_key: ${ROOMLIO_API_KEY}\n  edit_lookback: -1m", 4, "roomlio.edit_lookback",
     "must be 0 or more (got '-1m')"),
    ("duration-bool", "    secret: ${CRM_SECRET}", "    secret: ${CRM_SECRET}\n    timeout: true",
     11, "webhooks.crm.timeout", "must be a duration"),
    ("event-enum", "    keywords: [refund]", "    events: [created, deleted]", 15,
     "rules[0].events", "unknown event 'deleted' (choose from: created, edited)"),
    ("message-type-enum", "    keywords: [refund]", "    message_type: usr", 15,
     "rules[0].message_type", "unknown message type 'usr' (choose from: offline, system, user)"),
    ("user-type-enum", "    keywords: [refund]", "    user_type: [guest]", 15,
     "rules[0].user_type", "unknown user type 'guest' (choose from: admin, embed,"),
    ("format-enum", "    url: https://hooks.example.com/x",
     "    url: https://hooks.example.com/x\n    format: telegram", 13, "webhooks.slack.format",
     "unknown format 'telegram' (choose from: standard, slack, teams, template, "
     "cloudevents)"),
    ("unknown-room", "    keywords: [refund]", "    rooms: [rm_2]", 15, "rules[0].rooms",
     "unknown room 'rm_2' (configured: rm_1, support-42)"),
    ("room-both", "  - id: rm_1", "  - {id: rm_1, key: k}", 5, "rooms[0]",
     "give exactly one of id or key, not both"),
    ("room-neither", "  - id: rm_1", "  - {}", 5, "rooms[0]", "needs an id or a key"),
    ("room-duplicate", "  - key: support-42", "  - id: rm_1", 6, "rooms[1].id",
     "duplicate room 'rm_1' (also rooms[0])"),
    ("room-number", "  - id: rm_1", "  - id: 42", 5, "rooms[0].id",
     "must be a string (got 42); put it in quotes"),
    ("no-rooms", "rooms:\n  - id: rm_1\n  - key: support-42", "rooms: []", 4, "rooms",
     "must not be empty"),
    ("rooms-missing", "rooms:\n  - id: rm_1\n  - key: support-42\n", "", 1, "rooms",
     "is required"),
    ("base-url-scheme", "https://api.roomlio.com/rpc", "ftp://api.roomlio.com/rpc", 2,
     "roomlio.base_url", "must be an http:// or https:// URL (got scheme 'ftp')"),
    ("webhook-url-scheme", "https://crm.example.com/hook", "file:///etc/passwd", 9,
     "webhooks.crm.url", "must be an http:// or https:// URL (got scheme 'file')"),
    ("webhook-url-no-host", "https://crm.example.com/hook", "https:///hook", 9,
     "webhooks.crm.url", "must name a host"),
    ("webhook-url-missing", "    url: https://crm.example.com/hook\n", "", 8,
     "webhooks.crm.url", "is required"),
    ("webhook-name", "  slack:", "  'sl ack':", 11, "webhooks.sl ack",
     "invalid webhook name 'sl ack'; use letters, digits, '_', '.' and '-'"),
    ("no-webhooks", "webhooks:\n  crm:\n    url: https://crm.example.com/hook\n"
     "    secret: ${CRM_SECRET}\n  slack:\n    url: https://hooks.example.com/x\n",
     "webhooks: {}\n", 7, "webhooks", "must define at least one webhook"),
    ("header-reserved", "    secret: ${CRM_SECRET}",
     "    secret: ${CRM_SECRET}\n    headers: {webhook-signature: x}", 11,
     "webhooks.crm.headers.webhook-signature", "the notifier sets webhook-signature itself"),
    ("header-number", "    secret: ${CRM_SECRET}",
     "    secret: ${CRM_SECRET}\n    headers: {X-Count: 5}", 11,
     "webhooks.crm.headers.X-Count", "must be a string; put numbers in quotes (got a number)"),
    ("header-line-break", "    secret: ${CRM_SECRET}",
     '    secret: ${CRM_SECRET}\n    headers: {X-Note: "a\\r\\nb"}', 11,
     "webhooks.crm.headers.X-Note", "contains a line break; header values must be one line"),
    ("sqlite-url-with-host", "rules:", "state: sqlite://host/x.db\nrules:", 13, "state",
     "write a SQLite URL as sqlite:///absolute/path/notifier.db"),
    ("rule-name-missing", "  - name: refunds\n    keywords", "  - keywords", 14, "rules[0].name",
     "is required"),
    ("rule-name-empty", "name: refunds", "name: ''", 14, "rules[0].name", "must not be empty"),
    ("rule-name-duplicate", "    notify: [crm]\n", "    notify: [crm]\n  - name: refunds\n"
     "    notify: crm\n", 17, "rules[1].name", "duplicate rule name 'refunds' (first at line 14)"),
    ("no-rules", "rules:\n  - name: refunds\n    keywords: [refund]\n    notify: [crm]\n",
     "rules: []\n", 13, "rules", "must not be empty"),
    ("page-size-zero", "  api_key: ${ROOMLIO_API_KEY}",
     "  api_key: ${ROOMLIO_API_KEY}\n  page_size: 0", 4, "roomlio.page_size",
     "must be from 1 to 1000 (got 0)"),
    ("page-size-too-big", "  api_key: ${ROOMLIO_API_KEY}",
     "  api_key: ${ROOMLIO_API_KEY}\n  page_size: 1001", 4, "roomlio.page_size",
     "must be from 1 to 1000 (got 1001)"),
    ("page-size-text", "  api_key: ${ROOMLIO_API_KEY}",
     "  api_key: ${ROOMLIO_API_KEY}\n  page_size: many", 4, "roomlio.page_size",
     "must be a whole number from 1 to 1000 (got 'many')"),
    ("max-attempts", "    secret: ${CRM_SECRET}", "    secret: ${CRM_SECRET}\n    max_attempts: 0",
     11, "webhooks.crm.max_attempts", "must be of at least 1 (got 0)"),
    ("allow-private-not-bool", "rules:", "delivery: {allow_private_urls: maybe}\nrules:", 13,
     "delivery.allow_private_urls", "must be true or false (got 'maybe')"),
    ("start-from-naive", "  api_key: ${ROOMLIO_API_KEY}",
     "  api_key: ${ROOMLIO_API_KEY}\n  start_from: 2024-05-01T00:00:00", 4, "roomlio.start_from",
     "has no timezone; add Z or an offset"),
    ("start-from-garbage", "  api_key: ${ROOMLIO_API_KEY}",
     "  api_key: ${ROOMLIO_API_KEY}\n  start_from: yesterday", 4, "roomlio.start_from",
     "use now, beginning or an ISO 8601 time with a timezone"),
    ("postgres-state-no-database", "rules:", "state: postgresql://notifier:hunter2@db\nrules:",
     13, "state", "the PostgreSQL URL names no database (or more than one); write it as"),
    ("other-state-url", "rules:", "state: mysql://u:hunter2@db/x\nrules:", 13, "state",
     "unsupported state URL scheme 'mysql'; use a SQLite file path"),
    ("section-not-mapping", "roomlio:\n  base_url: https://api.roomlio.com/rpc\n"
     "  api_key: ${ROOMLIO_API_KEY}\n", "roomlio: [a]\n", 1, "roomlio",
     "must be a mapping (got a list)"),
    ("bad-tag", "keywords: [refund]", "keywords: !!int nope", 15, "rules[0].keywords",
     "cannot read this value as tag:yaml.org,2002:int"),
    ("unterminated-var", "keywords: [refund]", "keywords: ['${OOPS']", 15, "rules[0].keywords[0]",
     "unterminated ${; write $${ for a literal ${"),
    ("unset-var", "${CRM_SECRET}", "${CRM_WEBHOOK_SECRET}", 10, "webhooks.crm.secret",
     "environment variable CRM_WEBHOOK_SECRET is not set"),
]


@pytest.mark.parametrize(("old", "new", "line", "key", "fragment"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_mistake_is_reported_at_its_line_and_key(tmp_path: Path, old: str, new: str,
                                                      line: int, key: str, fragment: str) -> None:
    """A single edit to a valid file yields a problem that names its line, key and fix."""
    found = problems(tmp_path, edited(old, new))
    assert any(p.line == line and p.key == key and fragment in p.message for p in found), (
        "\n".join(map(str, found)))


def test_problem_prints_as_file_line_key_message(tmp_path: Path) -> None:
    """ConfigError's text is one `file:line: key: message` line per problem."""
    path = write(tmp_path, edited("notify: [crm]", "notify: [slakc]"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)
    assert str(caught.value) == (
        f"{path}:16: rules[0].notify: unknown webhook 'slakc' (known: crm, slack)")


def test_all_problems_are_collected_in_line_order(tmp_path: Path) -> None:
    """Several mistakes are all reported, sorted by line, not just the first one."""
    text = edited("https://api.roomlio.com/rpc", "ftp://x")
    text = edited("notify: [crm]", "notify: [slakc]", text)
    text = edited("  - id: rm_1", "  - {}", text)
    assert [p.line for p in problems(tmp_path, text)] == [2, 5, 16]


def test_an_unset_variable_is_reported_once_by_name(tmp_path: Path) -> None:
    """The missing variable is named; the empty result is not reported again."""
    found = problems(tmp_path, MINIMAL, env={"CRM_SECRET": SECRET})
    assert [str(p).split(":", 1)[1] for p in found] == [
        "3: roomlio.api_key: environment variable ROOMLIO_API_KEY is not set"]


@pytest.mark.parametrize("file_text, fragment", [
    ("", "the file is empty"),
    ("# only a comment\n", "the file is empty"),
    ("- a\n- b\n", "the top level must be a mapping with roomlio, rooms, webhooks and rules"),
    ("just text\n", "must be a mapping with roomlio, rooms, webhooks and rules (got a string)"),
    ("a: 1\n---\nb: 2\n", "expected a single document"),
    ("a: \x00\n", "unacceptable character #x0000"),
    ("a: &x [*x]\n", "unknown key 'a'"),
    ("a: *nowhere\n", "found undefined alias"),
    ("\t- tab\n", "YAML syntax error"),
    ("[" * 5000, "YAML"),
])
def test_unusable_files_become_problems(tmp_path: Path, file_text: str, fragment: str) -> None:
    """Empty, non-mapping, multi-document and binary files are problems, not tracebacks."""
    found = problems(tmp_path, file_text)
    assert found and any(fragment in str(p) for p in found), "\n".join(map(str, found))


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    """A path that does not exist gives one problem, and load_config raises ConfigError."""
    path = str(tmp_path / "nope.yaml")
    assert check_config(path, ENV) == [Problem(path, None, "", "file not found")]
    with pytest.raises(ConfigError):
        load_config(path, ENV)


def test_non_utf8_file_is_a_problem(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported with their offset."""
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"roomlio: \xff\n")
    assert "not UTF-8" in str(check_config(str(path), ENV)[0])


SECRET_CASES = [
    ("whsec_c2hvcnQ=", "decodes to 5 bytes"),
    ("sk_" + "A" * 40, "must start with 'whsec_'"),
    ("whsec_!!!not-base64!!!", "not valid base64"),
]


@pytest.mark.parametrize(("secret", "fragment"), SECRET_CASES)
@pytest.mark.parametrize("via_env", [False, True])
def test_malformed_secrets_are_reported_without_their_value(
        tmp_path: Path, secret: str, fragment: str, via_env: bool) -> None:
    """A bad secret is explained, but neither it nor its base64 part appears in the message."""
    text = MINIMAL if via_env else edited("${CRM_SECRET}", secret)
    found = problems(tmp_path, text, env={**ENV, "CRM_SECRET": secret})
    assert [(p.line, p.key) for p in found] == [(10, "webhooks.crm.secret")]
    message = str(found[0])
    assert fragment in message
    assert secret not in message and secret.removeprefix("whsec_") not in message
    assert ("${CRM_SECRET}" in message) is via_env


def test_values_from_the_environment_are_never_echoed(tmp_path: Path) -> None:
    """Wrong values that came from ${VAR} are named by their variable, not shown."""
    text = edited("  api_key: ${ROOMLIO_API_KEY}",
                  "  api_key: ${ROOMLIO_API_KEY}\n  page_size: ${PAGE}\n  base_url: ${URL}")
    text = edited("  base_url: https://api.roomlio.com/rpc\n", "", text)
    text = edited("url: https://hooks.example.com/x", "url: ${HOOK}", text)
    env = {**ENV, "PAGE": "secret-page-size", "URL": "gopher://secret-host",
           "HOOK": "http://127.0.0.1/secret-path"}
    messages = "\n".join(map(str, problems(tmp_path, text, env)))
    assert "the value from ${PAGE}" in messages
    assert "url points to a private address; set allow_private_urls" in messages
    for value in (*env.values(), "gopher", "127.0.0.1"):
        assert value not in messages


def test_variables_are_substituted_and_escaped(tmp_path: Path) -> None:
    """${VAR} takes the environment's text, $${ stays a literal ${, and digits count as ints."""
    text = edited("  api_key: ${ROOMLIO_API_KEY}",
                  "  api_key: pre-${ROOMLIO_API_KEY}-$${NOT_A_VAR}\n  page_size: ${PAGE}")
    config = load_config(write(tmp_path, text), {**ENV, "PAGE": "7"})
    assert config.roomlio.api_key == f"pre-{API_KEY}-${{NOT_A_VAR}}"
    assert config.roomlio.page_size == 7


PRIVATE_HOSTS = ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "localhost", "api.localhost",
                 "10.1.2.3", "192.168.0.10", "172.16.5.4", "169.254.169.254", "0.0.0.0",
                 "[fe80::1]", "[fd00::1]", "127.1", "2130706433", "100.64.0.1"]


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_private_webhook_urls_are_refused_by_default(tmp_path: Path, host: str) -> None:
    """A literal private, loopback or link-local target needs allow_private_urls."""
    text = edited("https://crm.example.com/hook", f"http://{host}:8080/hook")
    found = problems(tmp_path, text)
    assert [(p.line, p.key) for p in found] == [(9, "webhooks.crm.url")]
    assert found[0].message == (f"url points to a private address ({host.strip('[]')}); "
                                "set allow_private_urls: true to allow it")


@pytest.mark.parametrize(("own", "default", "allowed"), [
    (None, None, False),
    ("true", None, True),
    (None, "true", True),
    ("false", "true", False),
])
def test_allow_private_urls_admits_private_targets(tmp_path: Path, own: str | None,
                                                   default: str | None, allowed: bool) -> None:
    """The webhook's own allow_private_urls, else the delivery default, decides."""
    text = edited("https://crm.example.com/hook", "http://127.0.0.1:8080/hook")
    if own is not None:
        text = edited("    secret: ${CRM_SECRET}", f"    secret: ${{CRM_SECRET}}\n"
                      f"    allow_private_urls: {own}", text)
    if default is not None:
        text = edited("rules:", f"delivery: {{allow_private_urls: {default}}}\nrules:", text)
    assert (problems(tmp_path, text) == []) is allowed
    if allowed:
        assert load_config(write(tmp_path, text), ENV).webhooks["crm"].allow_private_urls


@pytest.mark.parametrize("url", ["https://crm.example.com/hook", "http://8.8.8.8/x",
                                 "https://[2606:4700::1111]/x", "https://user:pw@example.org/"])
def test_public_webhook_urls_are_accepted(tmp_path: Path, url: str) -> None:
    """Names and global addresses pass the literal-address check."""
    assert problems(tmp_path, edited("https://crm.example.com/hook", url)) == []


@pytest.mark.parametrize(("address", "private"), [
    ("127.0.0.1", True), ("10.0.0.1", True), ("169.254.1.1", True), ("0.0.0.0", True),
    ("224.0.0.1", True), ("240.0.0.1", True), ("::1", True), ("::", True),
    ("::ffff:127.0.0.1", True), ("::ffff:10.0.0.1", True), ("fe80::1", True),
    ("fc00::1", True), ("2002:7f00:1::", True), ("8.8.8.8", False), ("1.1.1.1", False),
    ("2606:4700::1111", False), ("::ffff:8.8.8.8", False),
])
def test_is_private_address_table(address: str, private: bool) -> None:
    """The SSRF guard's address test, shared with the sender's resolver."""
    assert is_private_address(ipaddress.ip_address(address)) is private


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("5s", 5.0), ("1.5s", 1.5), ("10m", 600.0), ("1h", 3600.0),
    ("1d", 86400.0), ("5 s", 5.0), (" 7 ", 7.0), (".5s", 0.5), (3, 3.0), (2.5, 2.5), (0, 0.0),
    ("-5s", -5.0),
])
def test_durations_parse_to_seconds(text: str | float, seconds: float) -> None:
    """Durations take ms/s/m/h/d suffixes, optional spaces, or plain numbers of seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "s", "", "5 sec", "1e3s", True, None, [1], "nan",
                                  float("inf"), 10**400])
def test_durations_reject_garbage(text: object) -> None:
    """Anything else is a ValueError, which the loader turns into a problem."""
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("state", "expected"), [
    ("state.db", "{dir}/state.db"),
    ("sub/../other.db", "{dir}/other.db"),
    ("/var/lib/notifier.db", "/var/lib/notifier.db"),
    ("sqlite:///var/lib/n.db", "/var/lib/n.db"),
    ("sqlite:////var/lib/n.db", "/var/lib/n.db"),
    ('":memory:"', ":memory:"),
])
def test_state_is_resolved_against_the_config_folder(tmp_path: Path, state: str,
                                                     expected: str) -> None:
    """Relative SQLite paths are relative to the file's folder; sqlite:/// URLs are absolute."""
    text = edited("rules:", f"state: {state}\nrules:")
    config = load_config(write(tmp_path, text), ENV)
    assert config.state == expected.format(dir=tmp_path)


def test_postgres_state_message_hides_the_password(tmp_path: Path) -> None:
    """A malformed PostgreSQL URL is refused without printing the URL or its password."""
    text = edited("rules:", "state: postgres://notifier:hunter2@db:99999/x\nrules:")
    message = str(problems(tmp_path, text)[0])
    assert "hunter2" not in message and "db:5432" not in message


def test_anchors_aliases_and_merge_keys_work(tmp_path: Path) -> None:
    """Shared settings can be written once with &anchor, *alias and <<: merges."""
    text = edited("  slack:\n    url: https://hooks.example.com/x\n",
                  "  slack:\n    <<: &fast {timeout: 1s, max_attempts: 3}\n"
                  "    url: https://hooks.example.com/x\n    max_attempts: 4\n"
                  "  other:\n    <<: *fast\n    url: https://other.example.com/x\n")
    hooks = load_config(write(tmp_path, text), ENV).webhooks
    assert (hooks["slack"].timeout, hooks["slack"].max_attempts) == (1.0, 4)
    assert (hooks["other"].timeout, hooks["other"].max_attempts) == (1.0, 3)


def test_config_formats_are_implemented_by_delivery() -> None:
    """Every format the config accepts has a payload function in notifier.delivery.formats."""
    assert set(FORMATS) <= set(IMPLEMENTED_FORMATS)


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an env argument, ${VAR} reads the process environment."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert load_config(write(tmp_path, MINIMAL)).roomlio.api_key == API_KEY


_PIECES = [*" :-[]{}&*!|>'\"#%@`,?$\t\\0aZ", "${", "$${", "\n", "  ", "<<: ", "\x00", "é"]


def _mutate(lines: list[str], data: st.DataObject) -> list[str]:
    """Delete, duplicate or replace a line, or splice random characters into one."""
    lines = list(lines)
    for _ in range(data.draw(st.integers(1, 4))):
        if not lines:
            break
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["delete", "duplicate", "replace", "splice"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "replace":
            lines[i] = data.draw(st.text(max_size=30))
        else:
            at = data.draw(st.integers(0, len(lines[i])))
            chunk = "".join(data.draw(st.lists(st.sampled_from(_PIECES), max_size=4)))
            lines[i] = lines[i][:at] + chunk + lines[i][at:]
    return lines


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_never_raise_anything_but_config_error(tmp_path: Path,
                                                            data: st.DataObject) -> None:
    """Random edits of a valid file either load or raise ConfigError without leaking secrets."""
    text = "\n".join(_mutate(FULL.splitlines(), data))
    path = write(tmp_path, text)
    try:
        load_config(path, ENV)
    except ConfigError as exc:
        assert exc.problems
        message = str(exc)
        for secret in (SECRET, OLD_SECRET, API_KEY, TOKEN):
            assert secret not in message
    assert os.path.exists(path)


def test_rules_may_name_rooms_whose_ids_come_from_the_environment(tmp_path: Path) -> None:
    """A room id read from ${VAR} matches in rules, and is listed by its variable, not value."""
    text = edited("  - id: rm_1", "  - id: ${ROOM}")
    text = edited("    keywords: [refund]", "    rooms: [rm_hidden, nope]", text)
    found = problems(tmp_path, text, env={**ENV, "ROOM": "rm_hidden"})
    assert [p.message for p in found] == [
        "unknown room 'nope' (configured: ${ROOM}, support-42)"]


def test_url_credentials_and_an_authorization_header_are_refused_together(tmp_path):
    """A webhook cannot carry credentials both in its URL and in an Authorization header."""
    from tests.conftest import TEST_ENV, config_text

    path = tmp_path / "rules.yaml"
    path.write_text(config_text(
        "http://127.0.0.1:1/rpc", "https://hooks.example.com", rooms=["r1"],
        webhooks={"crm": {"url": "https://u:pw@hooks.example.com/x",
                          "headers": {"Authorization": "Bearer s3cret"}}}))
    problems = [str(p) for p in check_config(str(path), env={**os.environ, **TEST_ENV})]
    assert any("webhooks.crm.headers" in p and "Authorization" in p for p in problems)
    assert not any("pw" in p or "s3cret" in p for p in problems)
