"""OpenTelemetry traces (notifier.util.tracing, notifier.util.otel): a real `notifier run`
exports OTLP/HTTP to a real collector (notifier.testing.otlp, decoding the protobuf with
opentelemetry-proto); the spans, their parents and links, their attributes and the
``traceparent`` each webhook request carries are checked against what happened."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import notifier.util
from notifier.errors import ConfigError
from notifier.events import CREATED, NEVER_EDITED, Delivery, Event, delivery_id, event_id
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from notifier.testing.otlp import OtlpCollector, Span
from notifier.util import tracing
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command, running

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals as on the target")

BODY = "refund please: the secret word is pineapple-7731"
OTLP_TOKEN = "otlp-token-" + "t" * 20


def _env(collector: OtlpCollector, **extra: str) -> dict[str, str]:
    """The test's environment without any OTEL_* of the caller's, exporting to
    ``collector`` with a short batch delay."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, **TEST_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {OTLP_TOKEN}",
            "OTEL_SERVICE_NAME": "notifier-under-test", "OTEL_BSP_SCHEDULE_DELAY": "50",
            **extra}


@asynccontextmanager
async def notifier_run(config: Path,
                       env: Mapping[str, str]) -> AsyncIterator[asyncio.StreamReader]:
    """`notifier run` for the block; then SIGTERM, and it must stop cleanly (exit 0),
    which flushes its spans."""
    proc = await asyncio.create_subprocess_exec(
        *notifier_command("run", "--config", str(config)), env=dict(env),
        stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    try:
        yield proc.stderr
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            err = await proc.stderr.read()
            assert await proc.wait() == 0, err.decode(errors="replace")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _logged(stderr: asyncio.StreamReader, text: bytes) -> None:
    """Wait for the notifier's log line holding ``text``."""
    async with asyncio.timeout(20):
        while text not in (line := await stderr.readline()):
            assert line, "the notifier exited"


async def _saved_attempt(db: Path) -> None:
    """Wait until the outbox row records the failed attempt (logged just before it is
    saved; a stop in between would not count it)."""
    async with asyncio.timeout(20):
        # ASYNC110 ignored: another process's file, no event to await; bounded above
        while not _attempts(db):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def _attempts(db: Path) -> int:
    """The most attempts an outbox row records, read-only (never creating the file)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT coalesce(max(attempts), 0) FROM outbox").fetchone()[0])


def _one(spans: list[Span], **attributes: Any) -> Span:
    found = [s for s in spans if all(s.attributes.get(k) == v for k, v in attributes.items())]
    assert len(found) == 1, (attributes, spans)
    return found[0]


def _traceparent(span: Span) -> str:
    return f"00-{span.trace_id}-{span.span_id}-01"


def _assert_nothing_private(spans: list[Span], *private: str) -> None:
    """No attribute (span or resource) holds a secret, the body or a URL."""
    for span in spans:
        for key, value in {**span.attributes, **span.resource}.items():
            for text in private:
                assert text not in str(value), (span.name, key, value)


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "delivery-worker"])
async def test_a_retried_delivery_is_traced_from_its_detection_to_its_2xx(tmp_path, workers):
    """The poll that read the message (the only poll with a span: the idle ones leave
    none), the commit of its page, its detection and both attempts (503, then 200):
    detection links the commit; the attempts are its children
    with webhook, attempt, status and error kind, whether the runner or a delivery worker
    process POSTs; each request's traceparent is its attempt span; no secret, URL or body
    is an attribute; the signature still verifies."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET}) as rx, OtlpCollector() as otlp:
        emu.add_room(key="r1")
        message = emu.post("r1", BODY)
        rx.inject(Fault.status(503), path="/crm")
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1", "gone"], webhooks={"mod": {
            "url": f"{rx.url}/mod"}}, delivery={"workers": workers}))
        async with notifier_run(path, _env(otlp)):
            await rx.wait_count(1, timeout=20)
            await otlp.wait_for(lambda c: len(c.named("webhook.attempt")) == 2, timeout=20)
            # the unknown room polls at its own place in its interval: its first (failed)
            # poll may come after the deliveries
            await otlp.wait_for(lambda c: any(s.attributes["notifier.room"] == "gone"
                                              for s in c.named("room.poll")), timeout=20)
        evt = event_id(message["id"], NEVER_EDITED)
        detected = _one(otlp.named("message.detected"), **{"notifier.event.id": evt})
        assert detected.parent_span_id == ""
        assert detected.attributes["notifier.room"] == "r1"
        assert detected.attributes["notifier.rules"] == ["refunds"]
        assert detected.attributes["notifier.webhooks"] == ["crm"]
        assert detected.attributes["roomlio.message.id"] == message["id"]
        (commit_ids,) = detected.links
        (commit,) = [s for s in otlp.named("page.commit") if (s.trace_id, s.span_id)
                     == commit_ids]
        assert commit.attributes["notifier.deliveries"] == 1
        polls = [s for s in otlp.named("room.poll") if s.attributes["notifier.room"] == "r1"]
        assert [(s.trace_id, s.span_id) for s in polls] == [(commit.trace_id,
                                                             commit.parent_span_id)]
        (poll,) = polls
        assert {k: poll.attributes[k] for k in ("notifier.room", "notifier.pages",
                                                "notifier.messages", "notifier.fresh")} == {
            "notifier.room": "r1", "notifier.pages": 1, "notifier.messages": 1,
            "notifier.fresh": 1}
        # the idle polls (every 100 ms) and edit scans of the run left no span; the
        # polls of a room Roomlio does not know failed, and say why
        assert otlp.named("room.edit_scan") == []
        gone = [s for s in otlp.named("room.poll") if s.attributes["notifier.room"] == "gone"]
        assert gone and all((s.status_code, s.attributes["error.type"]) ==
                            (2, "RoomlioNotFoundError") for s in gone)
        assert [s.attributes["notifier.deliveries"] for s in otlp.named("page.commit")] == [1]
        first = _one(otlp.named("webhook.attempt"), **{"notifier.attempt": 1})
        second = _one(otlp.named("webhook.attempt"), **{"notifier.attempt": 2})
        for span in (first, second):
            assert (span.trace_id, span.parent_span_id) == (detected.trace_id,
                                                            detected.span_id)
            assert span.kind == 3  # client
            assert span.attributes["notifier.webhook"] == "crm"
            assert span.attributes["notifier.webhook_id"] == delivery_id(evt, "crm")
            assert span.attributes["notifier.event.id"] == evt
        assert (first.attributes["http.response.status_code"], first.status_code,
                first.attributes["error.type"]) == (503, 2, "503")
        assert (second.attributes["http.response.status_code"], second.status_code) == (200, 0)
        assert "error.type" not in second.attributes
        failed, ok = rx.attempts
        assert [failed.headers["traceparent"], ok.headers["traceparent"]] == [
            _traceparent(first), _traceparent(second)]
        assert ok.verified is True
        assert detected.resource["service.name"] == "notifier-under-test"
        # the POSTing process: the runner, or the worker (its own instance id)
        assert (first.resource["service.instance.id"]
                == detected.resource["service.instance.id"]) is (workers == 0)
        assert all(r["authorization"] == f"Bearer {OTLP_TOKEN}" for r in otlp.requests)
        _assert_nothing_private(otlp.spans, BODY, "pineapple", SECRET, API_KEY, OTLP_TOKEN,
                                rx.url, "HTTP 503")


async def test_an_attempt_after_a_restart_joins_the_trace_of_its_detection(tmp_path):
    """Attempt 1 fails, the notifier stops; the next process's attempt 2 succeeds as a
    child of the detection span the first process exported, with no column storing it."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx, OtlpCollector() as otlp:
        emu.add_room(key="r1")
        message = emu.post("r1", "refund for order 12")
        rx.set_default_status("/crm", 503)
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1"],
                                    delivery={"max_backoff": "1s"}))
        async with notifier_run(path, _env(otlp)) as stderr:
            await _logged(stderr, b"attempt 1 for")
            await _saved_attempt(tmp_path / "state.db")  # so the next process makes attempt 2
        rx.set_default_status("/crm", None)
        async with notifier_run(path, _env(otlp)):
            await rx.wait_count(1, timeout=20)
            await otlp.wait_for(lambda c: any(s.attributes.get("notifier.attempt") == 2
                                              for s in c.named("webhook.attempt")), timeout=20)
        evt = event_id(message["id"], NEVER_EDITED)
        detected = _one(otlp.named("message.detected"), **{"notifier.event.id": evt})
        attempts = otlp.named("webhook.attempt")
        instances = {s.resource["service.instance.id"] for s in attempts}
        assert len(instances) == 2  # one attempt from each process
        assert [(s.attributes["notifier.attempt"], s.trace_id, s.parent_span_id)
                for s in attempts][:2] == [(1, detected.trace_id, detected.span_id),
                                           (2, detected.trace_id, detected.span_id)]
        assert rx.received[0].headers["traceparent"] == _traceparent(attempts[1])


async def test_an_edit_is_traced_under_the_edit_scan_that_found_it(tmp_path):
    """A message edited into a match: its ``message.edited`` detection links the commit
    under the ``room.edit_scan`` that found it, and its attempt is the detection's child."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx, OtlpCollector() as otlp:
        emu.add_room(key="r1")
        message = emu.post("r1", "hello there")
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1"]))
        async with notifier_run(path, _env(otlp)):
            await emu.wait_requests(1)  # read as it was: no match
            edited = emu.edit(message["id"], "refund please")
            await rx.wait_count(1, timeout=20)
            await otlp.wait_for(lambda c: bool(c.named("webhook.attempt")), timeout=20)
        detected = _one(otlp.named("message.detected"),
                        **{"notifier.event.id": event_id(message["id"], edited["editedAt"])})
        assert detected.attributes["notifier.event.kind"] == "message.edited"
        (commit,) = [s for s in otlp.named("page.commit")
                     if (s.trace_id, s.span_id) in detected.links]
        (scan,) = otlp.named("room.edit_scan")
        assert (scan.trace_id, scan.span_id) == (commit.trace_id, commit.parent_span_id)
        assert (scan.attributes["notifier.pages"], scan.attributes["notifier.messages"]) == (1, 1)
        (attempt,) = otlp.named("webhook.attempt")
        assert (attempt.trace_id, attempt.parent_span_id) == (detected.trace_id,
                                                              detected.span_id)


async def test_a_grouped_chat_message_is_traced_under_each_of_its_detections(tmp_path):
    """Three matches sent as one Slack message (group_wait): its attempt is the first
    detection's child, links the other two and lists all three event ids."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver() as rx, OtlpCollector() as otlp:
        emu.add_room(key="r1")
        messages = [emu.post("r1", f"refund number {i}") for i in range(3)]
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(
            emu.url, rx.url, rooms=["r1"], rules=[
                {"name": "refunds", "keywords": ["refund"], "notify": ["slack"]}],
            webhooks={"slack": {"url": rx.url_for("/slack"), "format": "slack",
                                "group_wait": "300ms", "rate_limit": "none"}}))
        async with notifier_run(path, _env(otlp)):
            await rx.wait_count(1, timeout=20)
            await otlp.wait_for(lambda c: bool(c.named("webhook.attempt")), timeout=20)
        (attempt,) = otlp.named("webhook.attempt")
        evts = attempt.attributes["notifier.group.event_ids"]  # the group's order
        assert sorted(evts) == sorted(event_id(m["id"], NEVER_EDITED) for m in messages)
        detected = [_one(otlp.named("message.detected"), **{"notifier.event.id": e})
                    for e in evts]
        assert attempt.attributes["notifier.event.id"] == evts[0]
        assert (attempt.trace_id, attempt.parent_span_id) == (detected[0].trace_id,
                                                              detected[0].span_id)
        assert sorted(attempt.links) == sorted((d.trace_id, d.span_id) for d in detected[1:])
        assert rx.received[0].headers["traceparent"] == _traceparent(attempt)


@pytest.mark.parametrize(("env", "wanted"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": " TRUE "}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, True),
])
def test_the_otel_environment_decides_whether_traces_are_wanted(env, wanted):
    """Traces need an OTLP endpoint (or the console exporter); the SDK's own switches,
    OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none, turn them off."""
    assert tracing.wanted(env) is wanted


@pytest.mark.parametrize(("name", "value"), [
    ("OTEL_TRACES_EXPORTER", "zipkin"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
])
def test_an_otel_setting_this_notifier_cannot_honour_is_named_in_one_line(name, value):
    """An exporter or protocol the extra does not ship is refused, naming the variable."""
    with pytest.raises(ConfigError) as caught:
        tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", name: value})
    text = str(caught.value)
    assert text.startswith(f"environment: {name}: {value!r} is not supported (use ")
    assert "\n" not in text


async def test_a_ratio_sampler_keeps_a_version_s_detection_and_attempts_together(
        monkeypatch, emulator, receiver, make_config):
    """parentbased_traceidratio 0.5 over 24 matches: some versions are traced and some
    not, and every attempt exported belongs to an exported detection and back."""
    async with OtlpCollector() as otlp:
        for name, value in {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
                            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                            "OTEL_TRACES_SAMPLER_ARG": "0.5",
                            "OTEL_BSP_SCHEDULE_DELAY": "50"}.items():
            monkeypatch.setenv(name, value)
        emulator.add_room(key="r1")
        for i in range(24):
            emulator.post("r1", f"refund {i}")
        assert tracing.start(version="0") is True
        try:
            async with running(make_config(rooms=["r1"])):
                await receiver.wait_count(24)
        finally:
            await asyncio.to_thread(tracing.stop)  # its exports reach this loop's collector
    detected = {s.attributes["notifier.event.id"] for s in otlp.named("message.detected")}
    attempted = {s.attributes["notifier.event.id"] for s in otlp.named("webhook.attempt")}
    assert 0 < len(detected) < 24
    assert attempted == detected


def test_a_message_s_trace_depends_on_its_deployment_not_on_the_process(monkeypatch):
    """Two processes of one deployment (same service name, other instance ids) rebuild the
    same trace for a message; another deployment (staging) gets a trace of its own."""
    event = Event.from_message(CREATED, "r1", {"id": "m1"}, ("refunds",), 0.0)
    delivery = Delivery.for_webhook(event, "crm", ("refunds",))
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # no network for this one

    def trace_id(service: str, instance: str) -> str:
        monkeypatch.setenv("OTEL_SERVICE_NAME", service)
        assert tracing.start(version="0", instance=instance) is True
        try:
            with tracing.attempt(delivery, 1):
                return tracing.headers()["traceparent"].split("-")[1]
        finally:
            tracing.stop()

    assert trace_id("notifier", "a") == trace_id("notifier", "b") != trace_id("staging", "a")


def test_the_start_up_line_names_the_collector_without_its_credentials(monkeypatch, caplog):
    """`tracing on: …` shows the endpoint's scheme, host and port, the service name and the
    sampler; not the userinfo, path or query of the URL, nor the OTLP headers."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT",
                       "https://otel-user:pw-7731@127.0.0.1:4318/base?token=tk-7731")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer {OTLP_TOKEN}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-7731")
    caplog.set_level("INFO", logger="notifier.tracing")
    try:
        assert tracing.start(version="0") is True
    finally:
        tracing.stop()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "notifier.tracing"]
    assert line.startswith("tracing on: spans to OTLP/HTTP https://127.0.0.1:4318 as "
                           "service svc-7731, sampler ParentBased")
    for private in ("otel-user", "pw-7731", "/base", "tk-7731", OTLP_TOKEN):
        assert private not in line


def test_without_the_extra_tracing_stays_off_and_says_why(monkeypatch, caplog):
    """An endpoint without OpenTelemetry installed: a warning naming the extra, and every
    span is the shared do-nothing one."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delitem(sys.modules, "notifier.util.otel", raising=False)
    monkeypatch.delattr(notifier.util, "otel", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    assert tracing.start(version="0") is False
    assert "pip install 'roomlio-notifier[otel]'" in caplog.text
    assert tracing.headers() == {}
    assert tracing.poll("r1") is tracing.commit("r1") is tracing._OFF


async def test_disabled_tracing_sends_no_traceparent_and_exports_nothing(
        monkeypatch, emulator, receiver, make_config):
    """OTEL_SDK_DISABLED=true beside an endpoint: deliveries go out without traceparent,
    and the collector hears nothing."""
    async with OtlpCollector() as otlp:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        assert tracing.start(version="0") is False
        emulator.add_room(key="r1")
        emulator.post("r1", "refund please")
        async with running(make_config(rooms=["r1"])):
            await receiver.wait_count(1)
        assert "traceparent" not in receiver.received[0].headers
        assert otlp.spans == [] and otlp.requests == []
