"""Logs against remote text: no forged lines, no terminal escapes, no secret in any spelling."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import aiohttp
import pytest
import yaml

from notifier.delivery.formats import load_config
from notifier.runtime.logs import (
    JsonFormatter,
    RedactionFilter,
    TextFormatter,
    config_secrets,
)
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from notifier.util.shown import shown
from tests.conftest import TEST_ENV, config_text, notifier_command

FORGED = "2026-01-01 ERROR forged"
#: Every way a remote string might break a line or drive a terminal (under the 200
#: characters of an API error message that the notifier keeps).
HOSTILE = (f"boom\n{FORGED}\r{FORGED}\x1b[2J\x1b]0;owned\x07\x85{FORGED}\u2028{FORGED}"
           f"\u2029{FORGED}\x0b\x0c\x1c{FORGED}\x00\u202egnp.exe")


async def _run_until(path: Path, stderr_has: str, *, timeout: float = 30,
                     env: dict[str, str] | None = None,
                     fetch: str | None = None) -> tuple[str, str]:
    """`notifier run` as a user runs it until ``stderr_has`` appears: its whole stderr, and
    the body of ``fetch`` from its ops listener at that moment."""
    proc = await asyncio.create_subprocess_exec(
        *notifier_command("run", "--config", str(path)), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **TEST_ENV, **(env or {})})
    assert proc.stderr is not None
    seen, body = b"", ""
    try:
        async with asyncio.timeout(timeout):
            while stderr_has.encode() not in seen:
                chunk = await proc.stderr.read(65536)
                assert chunk, f"notifier exited early: {seen.decode(errors='replace')}"
                seen += chunk
            if fetch is not None:
                listener = re.search(rb"ops listener on (http://\S+)", seen)
                assert listener, seen
                async with aiohttp.ClientSession() as http, \
                        http.get(listener[1].decode() + fetch) as resp:
                    body = await resp.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
    logged = (seen + rest).decode()
    assert proc.returncode == 0, logged
    return logged, body

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
    logged, _ = await _run_until(path, "next try in")
    lines = logged.splitlines()  # splits on \x85, \u2028, \x1c… as many readers do
    assert not [line for line in lines if line.startswith(FORGED[:10])], logged
    assert "\x1b" not in logged and "\x00" not in logged and "\u202e" not in logged
    assert lines == logged.split("\n")[:len(lines)]
    # The Roomlio client escapes remote text and cuts it before it is logged: that form is
    # what each line carries, whole (escaped, not lost)
    events = [json.loads(line)["event"] for line in lines] if fmt == "json" else lines
    assert any(shown(HOSTILE) in event for event in events)


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


KEY = "rk_live_Zx9+Qp/Lm7=Tn4Wv8Ys2Hd6Jf1"
TOKEN = "xoxbT0k3nInThePath42"


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def _spelled(url: str) -> list[str]:
    """The API key and the webhook URL as a buggy API or a library may echo them."""
    return [KEY, quote(KEY, safe=""), _lower_hex(quote(KEY, safe="")), "x" * 185 + KEY,
            unquote(url), url.upper(), _lower_hex(url), f"{KEY[-12:]} and {KEY[:10]}"]


def _leaked(text: str, url: str) -> list[str]:
    """Any 8-character run of a secret (in any spelling) found in ``text``."""
    secrets = {KEY, TOKEN, quote(KEY, safe=""), urlsplit(url).path, unquote(urlsplit(url).path)}
    lowered = text.lower()
    return sorted({s[i:i + 8] for s in secrets for i in range(len(s) - 7)
                   if s[i:i + 8].lower() in lowered})


def _hook_url(receiver_url: str) -> str:
    return f"{receiver_url}/crm/T0%2FB1%2F{TOKEN}"


@pytest.mark.parametrize("form", range(8))
def test_redaction_finds_secrets_in_every_spelling_and_fragment(tmp_path: Path, form: int):
    """Decoded, percent-encoded (either hex case), upper-cased, cut short: all masked."""
    url = _hook_url("http://127.0.0.1:9")
    document = yaml.safe_load(config_text("http://127.0.0.1:8", "http://127.0.0.1:9",
                                          rooms=["r1"], webhooks={"crm": {"url": url}}))
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document))
    config = load_config(str(path), env={**os.environ, **TEST_ENV, "TEST_API_KEY": KEY})
    text = _spelled(url)[form][:200] + "; next try in 2s"
    redacted = RedactionFilter(config_secrets(config)).redact(text)
    assert not _leaked(redacted, url), redacted
    assert "[roomlio.api_key]" in redacted or "[webhooks.crm.url]" in redacted


async def test_an_api_echoing_secrets_leaks_none_to_logs_or_the_status_api(
        receiver: WebhookReceiver, tmp_path: Path) -> None:
    """notifier run against an API whose errors echo the key (cut at 200 characters) and the
    webhook URL decoded: neither the log nor /api/status shows any part of them."""
    url = _hook_url(receiver.url)
    async with RoomlioEmulator(api_key=KEY) as emulator:
        emulator.add_room(key="r1")
        echo = {"code": "x" * 185 + KEY,
                "message": f"{unquote(url)} {_lower_hex(quote(KEY, safe=''))}"}
        emulator.inject(Fault.status(500, body=echo), room="r1", times=100)
        document = yaml.safe_load(config_text(emulator.url, receiver.url, rooms=["r1"],
                                              webhooks={"crm": {"url": url}}))
        document["server"] = {"listen": "127.0.0.1:0"}
        document["logging"] = {"level": "DEBUG"}
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump(document))
        logged, status = await _run_until(path, "next try in", env={"TEST_API_KEY": KEY},
                                          fetch="/api/status")
    assert "[roomlio.api_key]" in logged and "[webhooks.crm.url]" in logged
    assert not _leaked(logged, url), logged
    assert "[roomlio.api_key]" in status and not _leaked(status, url), status


def test_the_postgresql_password_in_state_is_a_secret(tmp_path: Path):
    """`state: postgresql://user:pw@…`: the password is masked even without its URL."""
    document = yaml.safe_load(config_text("http://127.0.0.1:8", "http://127.0.0.1:9",
                                          rooms=["r1"]))
    document["state"] = "postgresql://notifier:${PG_PASSWORD}@db.internal:5432/notifier"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document))
    password = "pg-Pa55word-0123456789"
    config = load_config(str(path), env={**os.environ, **TEST_ENV, "PG_PASSWORD": password})
    redacted = RedactionFilter(config_secrets(config)).redact(
        f"auth failed for password {password[:14]}")
    assert "[state]" in redacted and password[:8] not in redacted
