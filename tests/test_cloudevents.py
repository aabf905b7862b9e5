"""``format: cloudevents`` end to end: `notifier run` → emulator → the real receiver, each
request parsed with the CloudEvents SDK for Python, in structured and in binary mode."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import Webhook as ReferenceWebhook

from notifier.config import Webhook
from notifier.delivery.formats import check_config, formatter_for, load_config
from notifier.delivery.formats.cloudevents import header_value
from notifier.events import Delivery, Event
from notifier.testing import Received, RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command, running

RULES = [{"name": "refunds", "keywords": ["refund"], "notify": ["crm"]}]


def parsed(got: Received) -> BaseCloudEvent:
    """The request as the CloudEvents SDK reads it (either mode, told by its headers)."""
    return from_http(HTTPMessage(headers=dict(got.headers), body=got.body), JSONFormat())


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(20):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _run_notifier(tmp_path: Path, emu: RoomlioEmulator, rx: WebhookReceiver,
                        hook: dict[str, Any]) -> asyncio.subprocess.Process:
    path = tmp_path / "rules.yaml"
    path.write_text(config_text(emu.url, rx.url, rooms=["r1"], webhooks={"crm": hook},
                                rules=RULES))
    return await asyncio.create_subprocess_exec(
        *notifier_command("run", "--config", str(path)), env={**os.environ, **TEST_ENV},
        stderr=asyncio.subprocess.DEVNULL)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[RoomlioEmulator, WebhookReceiver]]:
    async with RoomlioEmulator(api_key=API_KEY) as emu, WebhookReceiver({"/crm": SECRET}) as rx:
        yield emu, rx


@pytest.mark.parametrize("mode", ["structured", "binary"])
async def test_a_created_and_an_edited_message_arrive_as_signed_cloudevents(
        tmp_path: Path, servers: tuple[RoomlioEmulator, WebhookReceiver], mode: str) -> None:
    """Each request parses with the SDK: the stable webhook-id as id, the room as source,
    the com.roomlio type, data = rules and message; its signature verifies."""
    emu, rx = servers
    room_id = emu.add_room(key="r1")
    posted = emu.post("r1", "refund please")
    hook = {"url": rx.url_for("/crm"), "secret": "${TEST_SECRET}", "format": "cloudevents",
            "cloudevents_mode": mode}
    proc = await _run_notifier(tmp_path, emu, rx, hook)
    try:
        await rx.wait_count(1, timeout=30)
        edited = emu.edit(posted["id"], "refund now, please")
        await rx.wait_count(2, timeout=30)
    finally:
        await _stop(proc)
    expected_type = {"structured": "application/cloudevents+json",
                     "binary": "application/json"}[mode]
    for got, kind, message in zip(rx.received, ("created", "edited"), (posted, edited),
                                  strict=True):
        assert got.verified is True, got.error
        assert got.headers["content-type"] == expected_type
        event = parsed(got)
        assert event.get_specversion() == "1.0"
        assert event.get_id() == got.headers["webhook-id"]
        assert event.get_source() == f"urn:roomlio:room:{room_id}"
        assert event.get_type() == f"com.roomlio.message.{kind}"
        assert event.get_subject() == posted["id"]
        assert event.get_datacontenttype() == "application/json"
        sent = event.get_time()
        assert sent is not None and abs(datetime.now(UTC) - sent).total_seconds() < 60
        assert event.get_data() == {"rules": ["refunds"], "message": message}
    assert ("ce-id" in rx.received[0].headers) is (mode == "binary")


def _delivery(room_id: str = "rm_1", body: str = "refund") -> Delivery:
    message = {"id": "msg_1", "roomID": room_id, "body": body,
               "createdAt": "2026-11-25T10:00:02Z", "editedAt": "0001-01-01T00:00:00Z"}
    event = Event.from_message("message.created", "support", message, ("refunds",),
                               1_764_064_803.5)
    return Delivery.for_webhook(event, "crm", ("refunds",))


def _webhook(mode: str) -> Webhook:
    return Webhook(name="crm", url="https://hooks.example.com/x", format="cloudevents",
                   cloudevents_mode=mode)


@pytest.mark.parametrize("room_id", ["rm with space", 'quote"and%percent', "ünï/cödé"])
def test_a_room_id_of_any_text_makes_a_valid_source_and_header(room_id: str) -> None:
    """The source is a URI (percent-encoded) and a binary header value is printable ASCII
    that the SDK decodes back to that same source."""
    delivery = _delivery(room_id)
    payload = formatter_for(_webhook("binary"))(delivery)
    headers = dict(payload.headers)
    assert all(0x21 <= ord(c) < 0x7F for c in headers["ce-source"])
    event = from_http(HTTPMessage({"content-type": payload.content_type, **headers},
                                  payload.body), JSONFormat())
    structured = json.loads(formatter_for(_webhook("structured"))(delivery).body)
    assert event.get_source() == structured["source"]
    assert " " not in structured["source"] and '"' not in structured["source"]


def test_header_values_are_percent_encoded_as_the_http_binding_says() -> None:
    """Space, double quote, percent and non-ASCII are encoded; other printable ASCII is not."""
    assert header_value('a b"c%d/é:') == "a%20b%22c%25d/%C3%A9:"


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_the_signature_covers_the_exact_body_sent(mode: str) -> None:
    """The reference Standard Webhooks library verifies the request as built for sending."""
    from notifier.signing import decode_secret, signature_headers

    delivery = _delivery()
    payload = formatter_for(_webhook(mode))(delivery)
    headers = signature_headers((decode_secret(SECRET),), delivery.id,
                                int(datetime.now(UTC).timestamp()), payload.body)
    assert ReferenceWebhook(SECRET).verify(payload.body, headers) is not None


def test_an_unknown_mode_is_a_check_problem_naming_the_key(tmp_path: Path) -> None:
    """`cloudevents_mode: binery` is refused at check time with the choices; the key on
    another format is refused too."""
    hook = {"url": "https://hooks.example.com/x", "format": "cloudevents",
            "cloudevents_mode": "binery"}
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("https://api.roomlio.com/rpc", "https://hooks.example.com",
                                rooms=["r1"], webhooks={"crm": hook}))
    problems = [str(p) for p in check_config(str(path), env=TEST_ENV)]
    assert any("cloudevents_mode" in p and "structured, binary" in p for p in problems), \
        problems
    path.write_text(config_text("https://api.roomlio.com/rpc", "https://hooks.example.com",
                                rooms=["r1"], webhooks={"crm": {
                                    "url": "https://hooks.example.com/x",
                                    "cloudevents_mode": "binary"}}))
    problems = [str(p) for p in check_config(str(path), env=TEST_ENV)]
    assert any("only applies to format: cloudevents" in p for p in problems), problems


async def test_a_disabled_webhook_is_told_to_a_cloudevents_ops_webhook(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config: Any,
        tmp_path: Path) -> None:
    """410 Gone disables crm; the ops webhook, in format cloudevents, gets a signed
    com.roomlio.webhook.disabled event whose source names the webhook."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    receiver.set_default_status("/crm", 410)
    ops = {"url": receiver.url_for("/mod"), "secret": "${TEST_SECRET}",
           "format": "cloudevents"}
    make_config(rooms=["r1"], webhooks={"ops": ops}, rules=RULES)
    path = tmp_path / "rules.yaml"
    path.write_text(path.read_text() + "ops_webhook: ops\n")
    config = load_config(str(path), env={**os.environ, **TEST_ENV})
    async with running(config):
        await receiver.wait_count(1)
    got = receiver.received[0]
    assert got.path == "/mod" and got.verified is True
    event = parsed(got)
    assert event.get_type() == "com.roomlio.webhook.disabled"
    assert event.get_source() == "urn:roomlio-notifier:webhook:crm"
    assert event.get_subject() == "crm" and event.get_id() == got.headers["webhook-id"]
    data = event.get_data()
    assert isinstance(data, dict) and data["webhook"] == "crm" and "410" in data["reason"]


@pytest.mark.parametrize("kind, type_, subject", [
    ("message.created", "com.roomlio.message.created", "msg_1"),
    ("message.edited", "com.roomlio.message.edited", "msg_1")])
def test_the_attributes_name_the_delivery_the_room_and_when_it_was_seen(
        kind: str, type_: str, subject: str) -> None:
    """time is when the notifier saw the version (not the message's createdAt), id the
    delivery's webhook-id, data the standard format's data, in both modes alike."""
    message = {"id": "msg_1", "roomID": "rm_1", "body": "refund",
               "createdAt": "2026-11-25T10:00:02Z", "editedAt": "2026-11-25T10:07:00Z"}
    event = Event.from_message(kind, "support", message, ("refunds",), 1_795_600_803.5)  # type: ignore[arg-type]
    delivery = Delivery.for_webhook(event, "crm", ("refunds",))
    body = json.loads(formatter_for(_webhook("structured"))(delivery).body)
    assert body == {"specversion": "1.0", "id": delivery.id, "source": "urn:roomlio:room:rm_1",
                    "type": type_, "subject": subject, "time": "2026-11-25T10:00:03.500000Z",
                    "datacontenttype": "application/json",
                    "data": {"rules": ["refunds"], "message": message}}
    binary = formatter_for(_webhook("binary"))(delivery)
    assert dict(binary.headers) == {f"ce-{k}": v for k, v in body.items()
                                    if k not in ("data", "datacontenttype")}
    assert json.loads(binary.body) == body["data"]


def test_a_message_without_a_room_id_takes_the_room_as_configured() -> None:
    """The source falls back to the configured room (its key here), percent-encoded."""
    delivery = _delivery()
    message = {k: v for k, v in delivery.event.message.items() if k != "roomID"}
    event = Event.from_message("message.created", "support desk", message, ("refunds",), 0.0)
    body = json.loads(formatter_for(_webhook("structured"))(
        Delivery.for_webhook(event, "crm", ("refunds",))).body)
    assert body["source"] == "urn:roomlio:room:support%20desk"
