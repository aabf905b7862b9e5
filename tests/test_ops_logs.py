"""Logs: human text or JSON lines with stable fields, and redaction that no secret escapes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal

import pytest
import yaml

from notifier.runtime.logs import FIELDS, JsonFormatter, RedactionFilter, setup_logging
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command
from tests.opsutil import ADMIN_TOKEN

HEADER_TOKEN = "hdr-" + "h" * 20
URL_PASSWORD = "urlpw-" + "p" * 12
QUERY_TOKEN = "qtok-" + "q" * 16


@pytest.mark.parametrize(("line", "leaked"), [
    ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
    ("headers={'authorization': 'Basic dXNlcjpwdw=='}", "dXNlcjpwdw=="),
    ("POST https://user:hunter2@hooks.example.com/x failed", "hunter2"),
    ("secret whsec_MDEyMzQ1Njc4OWFiY2RlZg== rejected", "MDEyMzQ1Njc4OWFiY2RlZg"),
    ("sent bearer tok_live_123456", "tok_live_123456"),
])
def test_redaction_masks_credential_shapes_not_in_the_config(line, leaked):
    """Authorization values, bearer tokens, whsec_ secrets and URL passwords are masked."""
    assert leaked not in RedactionFilter().redact(line)


def test_redaction_replaces_configured_secrets_by_their_names():
    """A known secret is replaced by the name of the setting that holds it."""
    redactor = RedactionFilter({"sk-12345678": "roomlio.api_key"})
    assert redactor.redact("key sk-12345678 refused") == "key [roomlio.api_key] refused"


def test_json_lines_carry_the_stable_fields_and_a_redacted_traceback():
    """A JSON line has time, level, logger, event, the given fields and a clean error."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter({"s3cr3t-value": "webhooks.crm.secret"}))
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("notifier.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        raise ValueError("boom with s3cr3t-value")
    except ValueError:
        log.exception("delivery failed for %s", "s3cr3t-value", extra={
            "webhook": "crm", "room": "r1", "event_id": "evt_1", "attempt": 2, "status": 503,
            "duration": 0.25})
    finally:
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert set(line) == {"time", "level", "logger", "event", *FIELDS, "error"}
    assert line["event"] == "delivery failed for [webhooks.crm.secret]"
    assert (line["webhook"], line["attempt"], line["status"]) == ("crm", 2, 503)
    assert line["time"].endswith("Z") and line["level"] == "ERROR"
    assert "s3cr3t-value" not in stream.getvalue() and "ValueError" in line["error"]


def test_setup_logging_replaces_its_own_handler_instead_of_adding_one():
    """Calling setup twice leaves one notifier handler on the root logger."""
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        setup_logging("INFO", "json", stream=io.StringIO())
        setup_logging("DEBUG", "text", stream=io.StringIO())
        ours = [h for h in root.handlers if getattr(h, "_notifier", False)]
        assert len(ours) == 1 and not isinstance(ours[0].formatter, JsonFormatter)
    finally:
        for h in [h for h in root.handlers if h not in before]:
            root.removeHandler(h)
        root.setLevel(level)


def _secret_config(emulator: RoomlioEmulator, receiver: WebhookReceiver, fmt: str) -> str:
    port = receiver.url.rsplit(":", 1)[1]
    document = yaml.safe_load(config_text(
        emulator.url, receiver.url, rooms=["r1", "gone"],
        delivery={"timeout": "300ms", "max_attempts": 3, "max_backoff": "100ms"},
        webhooks={
            "crm": {"url": f"http://127.0.0.1:{port}/crm?token={QUERY_TOKEN}",
                    "secret": "${TEST_SECRET}",
                    "headers": {"Authorization": f"Bearer {HEADER_TOKEN}"}},
            "dead": {"url": f"http://ops:{URL_PASSWORD}@127.0.0.1:1/mod?token={QUERY_TOKEN}",
                     "secret": "${TEST_SECRET}"},
        },
        rules=[{"name": "all", "keywords": ["refund"], "notify": ["crm", "mod", "dead"]}]))
    document["server"] = {"listen": "127.0.0.1:0", "admin_token": ADMIN_TOKEN}
    document["logging"] = {"format": fmt, "level": "DEBUG"}
    return yaml.safe_dump(document)


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_fault_heavy_run_never_logs_a_secret(emulator, receiver, tmp_path, fmt):
    """API and webhook faults at DEBUG: the output holds no key, secret, token or password."""
    emulator.add_room(key="r1")
    for _ in range(4):
        emulator.post("r1", "refund please")
    # A buggy upstream that echoes credentials in the error that fails a whole poll
    # (the fourth in a row), which the notifier logs.
    echo = (f"{API_KEY} {SECRET} {HEADER_TOKEN} user:{URL_PASSWORD} token={QUERY_TOKEN} "
            f"{ADMIN_TOKEN}")
    faults = [Fault.status(500), Fault.status(429, retry_after=0.1),
              Fault.malformed("not_object"),
              Fault.status(500, body={"code": "internal", "message": echo}),
              Fault.truncated(cut_connection=True), Fault.status(400)]
    for fault in faults:
        emulator.inject(fault, room="r1")
    receiver.inject(Fault.status(500), path="/crm", times=2)
    receiver.inject(Fault.delay(1.0), path="/crm")
    receiver.set_default_status("/mod", 403)
    path = tmp_path / "rules.yaml"
    path.write_text(_secret_config(emulator, receiver, fmt))
    proc = await asyncio.create_subprocess_exec(
        *notifier_command("run", "--config", str(path)), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **TEST_ENV})
    try:
        await receiver.wait_for(lambda r: len([x for x in r.received if x.path == "/crm"]) >= 4,
                                timeout=30)
        await emulator.wait_for(lambda e: any(r.params.get("roomKey") == "gone"
                                              for r in e.requests), timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    logged = out.decode() + err.decode()
    assert proc.returncode == 0, logged
    for secret in (API_KEY, SECRET, SECRET.removeprefix("whsec_"), HEADER_TOKEN, URL_PASSWORD,
                   QUERY_TOKEN, ADMIN_TOKEN):
        assert secret not in logged, f"{secret[:6]}… leaked into the logs"
    assert "attempt" in logged and "gone" in logged and "[roomlio.api_key]" in logged
    if fmt == "json":
        lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
        assert {"time", "level", "logger", "event"} <= set(lines[0])
        assert any(line.get("webhook") == "crm" and line.get("status") == 500 for line in lines)
