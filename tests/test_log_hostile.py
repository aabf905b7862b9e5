"""Logs against remote text: no forged lines, no terminal escapes, no secret in any spelling."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path

import pytest
import yaml

from notifier.logs import JsonFormatter, TextFormatter, escape_controls
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import TEST_ENV, config_text, notifier_command

FORGED = "2026-01-01 ERROR forged"
#: Every way a remote string might break a line or drive a terminal (under the 200
#: characters of an API error message that the notifier keeps).
HOSTILE = (f"boom\n{FORGED}\r{FORGED}\x1b[2J\x1b]0;owned\x07\x85{FORGED}\u2028{FORGED}"
           f"\u2029{FORGED}\x0b\x0c\x1c{FORGED}\x00\u202egnp.exe")


async def _run_until(path: Path, stderr_has: str, *, timeout: float = 30) -> str:
    """`notifier run` as a user runs it, until ``stderr_has`` appears; its whole stderr."""
    proc = await asyncio.create_subprocess_exec(
        *notifier_command("run", "--config", str(path)), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **TEST_ENV})
    assert proc.stderr is not None
    seen = b""
    try:
        async with asyncio.timeout(timeout):
            while stderr_has.encode() not in seen:
                chunk = await proc.stderr.read(65536)
                assert chunk, f"notifier exited early: {seen.decode(errors='replace')}"
                seen += chunk
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
    logged = (seen + rest).decode()
    assert proc.returncode == 0, logged
    return logged

@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_roomlio_error_cannot_forge_a_log_line(emulator: RoomlioEmulator,
                                                       receiver: WebhookReceiver,
                                                       tmp_path: Path, fmt: str) -> None:
    """An API error message full of line breaks and escapes stays inside its own log line."""
    emulator.add_room(key="r1")
    for _ in range(6):
        emulator.inject(Fault.status(500, body={"code": "internal", "message": HOSTILE}),
                        room="r1")
    document = yaml.safe_load(config_text(emulator.url, receiver.url, rooms=["r1"]))
    document["logging"] = {"format": fmt}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document))
    logged = await _run_until(path, "next try in")
    lines = logged.splitlines()  # splits on \x85, \u2028, \x1c… as many readers do
    assert not [line for line in lines if line.startswith(FORGED[:10])], logged
    assert "\x1b" not in logged and "\x00" not in logged and "\u202e" not in logged
    assert lines == logged.split("\n")[:len(lines)]
    if fmt == "json":
        events = [json.loads(line)["event"] for line in lines]
        assert any(HOSTILE in event for event in events)  # escaped, not lost
    else:
        assert any(escape_controls(HOSTILE) in line for line in lines)


def test_a_traceback_is_indented_so_its_lines_cannot_pass_for_records() -> None:
    """A remote newline inside an exception's text lands on an indented line."""
    try:
        raise ValueError(f"bad answer\n{FORGED}")
    except ValueError as exc:
        record = logging.LogRecord("notifier.x", logging.ERROR, __file__, 1, "failed: %s",
                                   (str(exc),), (type(exc), exc, exc.__traceback__))
    lines = TextFormatter().format(record).split("\n")
    assert lines[0].endswith(f"failed: bad answer\\n{FORGED}")
    assert all(line.startswith("    ") for line in lines[1:]) and len(lines) > 3
    assert lines[-1] == "    " + FORGED


def test_json_lines_escape_c1_controls_and_unicode_line_separators() -> None:
    """JSON escapes C0 itself; C1, U+2028/2029 and bidi overrides are escaped too."""
    record = logging.LogRecord("notifier.x", logging.ERROR, __file__, 1, "%s", (HOSTILE,), None)
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1 and json.loads(line)["event"] == HOSTILE
