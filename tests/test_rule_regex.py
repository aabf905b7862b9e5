"""Rule patterns run on RE2: a chat message cannot make matching slow, and a pattern RE2
refuses is a `check` error that says why and what to write instead."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import pytest

from notifier.config import Rule
from notifier.rules import compile_rules
from notifier.testing import RoomlioEmulator, WebhookReceiver
from notifier.util.regex import compile_pattern
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command
from tests.test_cli import run_cli
from tests.test_rule_tools import write_config

#: Exponential for a backtracking engine: 28 characters took 13 s with Python's re.
CATASTROPHIC = r"^(\w+\s?)*$"
KIND = "message.created"


def hostile(words: int) -> str:
    """``words`` one-letter words then a '!': every split into (\\w+\\s?)* must be tried
    before a backtracking engine can say no."""
    return "a" * words + "!"


@pytest.mark.parametrize("text", [hostile(25), hostile(100_000)])
def test_a_catastrophic_pattern_decides_a_hostile_message_in_milliseconds(text):
    """The pattern that froze the loop answers "no match" for 25 or 100,000 characters
    at once, and still matches the messages it is meant for."""
    matcher = compile_rules([Rule("words", ("crm",), regex=(CATASTROPHIC,))])
    started = time.perf_counter()
    assert matcher.match({"body": text}, KIND, ()) == ()
    assert time.perf_counter() - started < 0.2
    assert matcher.match({"body": "hello there " * 1000}, KIND, ()) == ("words",)


@pytest.mark.parametrize(("pattern", "text", "found"), [
    (r"order #?\d{5}", "Where is ORDER #12345?", True),
    (r"Refund", "I want a REFUND", True),             # a literal: the shortcut path
    (r"refund now", "refund  now", False),            # literal spaces are exact
    (r"[A-Z]{3}-\d+", "ticket ＡＢＣ-４２", True),      # the text is NFKC-normalised, case-folded
    (r"^hi\b", "hi there", True),
    (r"caf\x{e9}", "CAFÉ", True),                      # RE2's \x{…} escape
    (r"x.y", "x\ud800y", True),                       # a lone surrogate is a character, no error
])
def test_patterns_match_case_insensitively_in_the_normalised_text(pattern, text, found):
    """Patterns keep the rules' semantics: case-insensitive, over the normalised text."""
    matcher = compile_rules([Rule("r", ("crm",), regex=(pattern,))])
    assert (matcher.match({"body": text}, KIND, ()) == ("r",)) is found


@pytest.mark.parametrize("pattern", ["refund", "Order 12", "a b", "x"])
def test_the_literal_shortcut_answers_as_the_engine_does(pattern):
    """A plain ASCII pattern skips RE2; both give the same answer on the same texts."""
    shortcut = compile_pattern(pattern)
    engine = compile_pattern(f"(?:{pattern})")  # not a plain literal: goes through RE2
    for text in ("REFUND", "order 123", "a  b", "A B", "xylophone", "", "ÿ x"):
        data = text.lower().encode()
        assert shortcut.search(data) is engine.search(data), text


@pytest.mark.parametrize(("pattern", "says"), [
    (r"(a+)\1", "backreferences (\\1 …) are not supported"),
    (r"(?P<w>x)(?P=w)", "backreferences are not supported"),
    (r"refund(?!ed)", "lookahead and lookbehind are not supported"),
    (r"(?<=order )\d+", "lookahead and lookbehind are not supported"),
    (r"done\Z", "write \\z for the end of the text"),
    (r"a{2000}", "a repeat count is at most 1000"),
    (r"order (\d+", "missing )"),
])
async def test_check_explains_a_pattern_the_linear_engine_refuses(tmp_path, pattern, says):
    """A refused pattern is a check error at its file:line naming the rule, the reason,
    the linear-time engine and where its syntax is documented."""
    config = write_config(tmp_path, [{"name": "bad", "regex": ["order", pattern],
                                      "notify": ["crm"]}])
    code, _, err = await run_cli("check", "--config", config, env=TEST_ENV)
    assert code == 2
    lines = Path(config).read_text().splitlines()  # noqa: ASYNC240  (a small local file)
    line = lines.index("  regex:") + 3  # the refused pattern's own line: the second item
    first = err.splitlines()[0]
    assert re.match(rf"{re.escape(config)}:{line}: rules\[0\]\.regex: rule 'bad': "
                    "invalid regex", first), first
    assert says in first and "linear" in first and "re2/wiki/Syntax" in first, first


async def test_a_hostile_message_leaves_notifier_run_serving_other_rooms_on_time(tmp_path):
    """`notifier run` with the catastrophic rule: while it reads the hostile message in
    r1, r2's messages still arrive within seconds, and r1 goes on past it."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="r1")
        emu.add_room(key="r2")
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1", "r2"], rules=[
            {"name": "refunds", "keywords": ["refund"], "notify": ["crm"]},
            {"name": "words", "rooms": ["r1"], "regex": [CATASTROPHIC], "notify": ["mod"]}]))
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path)), env={**os.environ, **TEST_ENV},
            stderr=asyncio.subprocess.DEVNULL)
        try:
            emu.post("r2", "refund 0")
            await rx.wait_count(1, timeout=30)  # started and serving
            emu.post("r1", hostile(40))  # years of backtracking for Python's re
            emu.post("r1", "plain words")
            for i in range(1, 4):
                posted = time.monotonic()
                emu.post("r2", f"refund {i}")
                await rx.wait_for(lambda r, n=i: sum(x.path == "/crm" for x in r.received) > n,
                                  timeout=5)
                assert time.monotonic() - posted < 5
            await rx.wait_for(lambda r: any(x.path == "/mod" for x in r.received), timeout=5)
            mod = [x.json["data"]["message"]["body"] for x in rx.received if x.path == "/mod"]
            assert mod == ["plain words"]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:  # frozen (the defect): a SIGTERM handler cannot run
                proc.kill()
                await proc.wait()
