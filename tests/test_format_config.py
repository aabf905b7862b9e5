"""The format keys of a webhook in rules.yaml: rate_limit, group_wait, template, content_type."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.config import Rate
from notifier.config.fields import Invalid
from notifier.config.format_fields import rate
from notifier.delivery.formats import check_config, load_config

HEAD = """\
roomlio:
  base_url: https://api.roomlio.com/rpc
  api_key: key-0123456789
rooms:
  - key: support-42
webhooks:
  hook:
    url: https://hooks.example.com/x
"""
RULES = """\
rules:
  - name: refunds
    keywords: [refund]
    notify: [hook]
"""


def write(tmp_path: Path, webhook_lines: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + webhook_lines + RULES)
    return str(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("1/s", Rate(1, 1.0)), ("4/s", Rate(4, 1.0)), ("100/m", Rate(100, 60.0)),
    ("10/30s", Rate(10, 30.0)), (" 5 / h ", Rate(5, 3600.0)), ("none", None),
    ("unlimited", None),
])
def test_rate_limits_read_as_requests_per_period(text: str, expected: Rate | None) -> None:
    """``N/unit`` and ``N/duration`` give a Rate; none means unlimited."""
    assert rate(text, repr(text)) == expected


@pytest.mark.parametrize("text", ["fast", "0/s", "1/parsec", "1", "-1/s", "1/0s"])
def test_a_bad_rate_limit_names_the_accepted_forms(text: str) -> None:
    """A rate that cannot be read is refused with examples of one that can."""
    with pytest.raises(Invalid):
        rate(text, repr(text))


@pytest.mark.parametrize(("fmt", "expected"), [
    ("slack", Rate(1, 1.0)), ("teams", Rate(4, 1.0)), ("standard", None), ("template", None),
])
def test_rate_limit_defaults_follow_the_format(tmp_path: Path, fmt: str,
                                               expected: Rate | None) -> None:
    """Slack gets 1/s, Teams 4/s, standard and template no limit unless one is set."""
    extra = "    template: '{}'\n" if fmt == "template" else ""
    config = load_config(write(tmp_path, f"    format: {fmt}\n{extra}"))
    assert config.webhooks["hook"].rate_limit == expected


def test_a_slack_webhook_reads_rate_limit_group_wait_and_headers(tmp_path: Path) -> None:
    """The keys land in the Webhook; headers may come from ${VAR}."""
    path = write(tmp_path, "    format: slack\n    rate_limit: 2/s\n    group_wait: 30s\n"
                           "    headers: {Authorization: 'Bearer ${TOKEN}'}\n")
    hook = load_config(path, env={"TOKEN": "t0ken"}).webhooks["hook"]
    assert (hook.format, hook.rate_limit, hook.group_wait) == ("slack", Rate(2, 1.0), 30.0)
    assert hook.headers == {"Authorization": "Bearer t0ken"}


def test_an_inline_template_is_compiled_at_load(tmp_path: Path) -> None:
    """format: template keeps its source and content_type."""
    path = write(tmp_path, "    format: template\n    content_type: text/plain\n"
                           "    template: 'hi {{ message.body }}'\n")
    hook = load_config(path).webhooks["hook"]
    assert (hook.template, hook.content_type) == ("hi {{ message.body }}", "text/plain")


def test_a_template_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    """template_file is found next to rules.yaml."""
    (tmp_path / "crm.j2").write_text('{"text": {{ message.body | tojson }}}\n')
    hook = load_config(write(tmp_path, "    format: template\n    template_file: crm.j2\n")
                       ).webhooks["hook"]
    assert hook.template == '{"text": {{ message.body | tojson }}}\n'
    assert hook.template_name == "crm.j2"


@pytest.mark.parametrize(("lines", "line", "expected"), [
    ("    format: template\n    template: |\n      {\"a\": 1}\n      {{ message.body }\n",
     10, "hook.template: the template does not compile: webhooks.hook.template line 2: "),
    ("    format: template\n    template_file: missing.j2\n", 10,
     "hook.template_file: cannot read 'missing.j2': No such file or directory"),
    ("    format: template\n", 9, "format: template needs exactly one of template"),
    ("    format: template\n    template: x\n    template_file: y.j2\n", 11,
     "format: template needs exactly one of template"),
    ("    template: x\n", 9, "hook.template: only applies to format: template (this "
                            "webhook's format is standard)"),
    ("    format: slack\n    content_type: text/plain\n", 10,
     "only applies to format: template"),
    ("    group_wait: 30s\n", 9, "hook.group_wait: grouping is for chat formats (slack, "
                                "teams); this webhook's format is standard"),
    ("    format: teams\n    secret: whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
     10, "hook.secret: format teams sends no signature"),
    ("    format: slack\n    rate_limit: lots\n", 10, "hook.rate_limit: must be a rate like"),
    ("    format: template\n    template: x\n    content_type: json\n", 11,
     "hook.content_type: must be a media type like application/json"),
])
def test_format_mistakes_are_problems_with_file_and_line(tmp_path: Path, lines: str, line: int,
                                                         expected: str) -> None:
    """Each mistake is one check problem at the right line, naming the webhook."""
    problems = check_config(write(tmp_path, lines))
    assert len(problems) == 1, problems
    assert problems[0].line == line
    assert expected in str(problems[0])


def test_a_template_file_with_a_syntax_error_names_the_file_and_its_line(
        tmp_path: Path) -> None:
    """The problem names the webhook key, the template file and the line inside it."""
    (tmp_path / "bad.j2").write_text("ok\nok\n{% if %}\n")
    [problem] = check_config(write(tmp_path, "    format: template\n"
                                             "    template_file: bad.j2\n"))
    assert "webhooks.hook.template_file: the template does not compile: bad.j2 line 3" \
        in str(problem)
