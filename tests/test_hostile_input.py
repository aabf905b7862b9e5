"""Hostile or odd input: strange bodies, huge and malformed pages, odd timestamps, webhook
targets that lead to private addresses. The notifier delivers what is valid exactly as
received, refuses the rest with a message, never crashes, and never logs a secret.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook as Verifier

from notifier.config import Webhook
from notifier.delivery import guards
from notifier.delivery.transport import GuardedResolver
from notifier.errors import DeliveryPermanentError
from notifier.events import CREATED, Delivery, Event
from notifier.runtime.service import ServiceHooks
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from notifier.testing._server import LocalServer
from tests.chaos import assert_no_secrets, serve, write_config
from tests.conftest import API_KEY, SECRET, Outcomes

pytestmark = pytest.mark.chaos


API_ERRORS: list[Exception] = []


def hooks() -> ServiceHooks:
    """Collects every failed Roomlio call, retried or not, in API_ERRORS."""
    API_ERRORS.clear()
    return ServiceHooks(on_api_error=API_ERRORS.append)


def said(fragment: str) -> bool:
    return any(fragment in str(e) for e in API_ERRORS)


@pytest.fixture
async def world(tmp_path, caplog):
    """An emulator with rooms r1 and r2, a receiver, and a config maker (tokens in URLs)."""
    caplog.set_level(logging.DEBUG)
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="r1")
        emu.add_room(key="r2")

        def config(**kwargs: Any) -> Any:
            kwargs.setdefault("rooms", ["r1", "r2"])
            return write_config(tmp_path, emu.url, rx.url, **kwargs)

        yield emu, rx, config
    assert_no_secrets("\n".join(map(str, API_ERRORS)), "the errors")
    assert_no_secrets(caplog.text, "the logs")


def _bodies(rx: WebhookReceiver) -> list[str]:
    return sorted(r.json["data"]["message"]["body"] for r in rx.received if r.path == "/crm")


ODD_BODIES = [
    "refund \x00\x01\x02\x1b[31mred\x1b[0m\x7f",
    "refund\u2028line\u2029paragraph\r\n\ttab",
    "refund \u202eevil\u202c \ufeff \u200b",
    "refund \ud83d half an emoji",  # a lone surrogate, as JSON can spell it
    "refund 🙂🇫🇷 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "refund " + "\\" * 10 + '"quotes"' + "</script>",
]


async def test_bodies_with_control_characters_arrive_exactly_as_received(world):
    """Control characters, separators, bidi marks and lone surrogates survive the trip."""
    emu, rx, config = world
    for body in ODD_BODIES:
        emu.post("r1", body)
    emu.post("r2", "refund from the quiet room")
    async with serve(config()) as run:
        await run.until(rx.wait_count(len(ODD_BODIES) + 1, timeout=15))
    by_id = {m["id"]: m for m in emu.messages("r1") + emu.messages("r2")}
    for received in rx.received:
        Verifier(SECRET).verify(received.body, received.headers)
        message = received.json["data"]["message"]
        sent = by_id[message["id"]]
        assert message == {**sent, "body": _scrubbed(sent["body"])}
    # a lone surrogate cannot travel in UTF-8: it arrives as U+FFFD, as Go would send it
    assert _bodies(rx) == sorted([*map(_scrubbed, ODD_BODIES), "refund from the quiet room"])


def _scrubbed(text: str) -> str:
    return text.replace("\ud83d", "\ufffd")


async def test_a_one_megabyte_body_arrives_whole_and_signed(world):
    """A 1 MB message pages in, is stored, sent and verified byte for byte."""
    emu, rx, config = world
    big = "refund " + "é" * 100_000 + "x" * 790_000  # ~1 MB of UTF-8
    emu.post("r1", big)
    emu.post("r1", "refund after the big one")
    async with serve(config()) as run:
        await run.until(rx.wait_count(2, timeout=20))
    assert _bodies(rx) == sorted([big, "refund after the big one"])
    for received in rx.received:
        Verifier(SECRET).verify(received.body, received.headers)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_answer_over_the_size_limit_is_refused_and_says_so(world, chunked):
    """Past roomlio.max_response_bytes the client stops reading and names the setting; the
    page is asked for again in fewer messages, and arrives."""
    emu, rx, config = world
    emu.post("r1", "refund before")
    emu.inject(Fault.huge(300_000, chunked=chunked), room="r1", times=3)
    async with serve(config(roomlio={"max_response_bytes": 200_000}), hooks=hooks()) as run:
        await run.until(rx.wait_count(1, timeout=20))
        emu.post("r1", "refund after")
        await run.until(rx.wait_count(2, timeout=20))
    assert said("exceeds the 200000-byte limit (roomlio.max_response_bytes)"), API_ERRORS
    assert emu.pending_faults == 0
    assert _bodies(rx) == ["refund after", "refund before"]


async def test_a_page_too_big_for_the_limit_comes_in_fewer_messages_and_one_message_holds_its_room(
        world, caplog):
    """Pages of 5 messages of 90 KB cannot fit 150 KB: they are read one message a page.
    A single message of 200 KB cannot fit at all: its room stops there and says which
    setting to raise; the messages before it are delivered, the other room goes on."""
    emu, rx, config = world
    for i in range(3):
        emu.post("r1", f"refund {i} " + "z" * 90_000)
    emu.post("r1", "refund too big " + "z" * 200_000)
    emu.post("r1", "refund after the big one")
    async with serve(config(roomlio={"max_response_bytes": 150_000, "page_size": 5}),
                     hooks=hooks()) as run:
        await run.until(rx.wait_count(3, timeout=20))
        emu.post("r2", "refund from the other room")
        await run.until(rx.wait_count(4, timeout=10))
        await run.until(emu.wait_for(
            lambda e: sum(r.room == "r1" and r.params["limit"] == 1 and r.done
                          for r in e.requests) >= 5))
    assert any("raise roomlio.max_response_bytes to read this room" in r.getMessage()
               for r in caplog.records), "no log line names the setting"
    assert _bodies(rx) == sorted([f"refund {i} " + "z" * 90_000 for i in range(3)]
                                 + ["refund from the other room"])


def _page(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), "hasMore": False, "nextCursor": "", **extra}


def _message(i: int, body: str, created: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"msg_crafted{i:04d}", "userID": "usr_x", "username": "", "first": "",
            "last": "", "visibility": "", "roomName": "", "userType": "member",
            "messageType": "user", "body": body, "links": [], "roomID": "rm_x",
            "createdAt": created, "editedAt": "0001-01-01T00:00:00Z", **extra}


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


DEEP_TEXT = '{"messages": [' + "[" * 100_000 + "]" * 100_000 + '], "hasMore": false}'


@pytest.mark.parametrize(("name", "answer", "says"), [
    ("nested past the parser", DEEP_TEXT, "not valid JSON"),
    ("not UTF-8", b'{"messages": [{"id": "msg_\xff\xfe", "createdAt": "2026"}]}',
     "not valid JSON"),
    ("messages not a list", {"messages": {"0": _message(1, "refund", "yesterday")}},
     "'messages' is missing or not a list"),
    ("hasMore not a boolean", _page(hasMore="yes"), "'hasMore' or 'nextCursor'"),
])
async def test_a_malformed_page_is_retried_not_fatal_and_delivers_nothing_of_it(
        world, name, answer, says):
    """A page malformed as a whole is refused with a reason, the room polls again, nothing
    of it is sent. (A malformed message in a sound page is quarantined: test_quarantine.)"""
    emu, rx, config = world
    emu.post("r1", "refund before")
    async with serve(config(), hooks=hooks()) as run:
        await run.until(rx.wait_count(1, timeout=10))
        emu.inject(Fault.status(200, body=answer), room="r1", times=2)
        emu.post("r1", "refund after")
        await run.until(rx.wait_count(2, timeout=15))
    assert emu.pending_faults == 0
    assert _bodies(rx) == ["refund after", "refund before"]
    assert said(says), API_ERRORS


def _odd_times() -> list[str]:
    """One moment an hour ago (before anything the emulator holds), spelt many ways."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return [base.strftime("%Y-%m-%dT%H:%M:%S.123456Z"),
            (base + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00"),
            base.strftime("%Y-%m-%dT%H:%M:%S+00:00"), base.strftime("%Y-%m-%d %H:%M:%SZ"),
            base.strftime("%Y%m%dT%H%M%SZ"),
            (base - timedelta(hours=4, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S-04:30"),
            base.strftime("%Y-%m-%dT%H:%M:%S.1Z"), base.strftime("%Y-%m-%dT%H:%M:%S")]


async def test_odd_but_valid_timestamps_and_deep_fields_are_delivered_as_received(world):
    """Valid ISO 8601 in any spelling, and a field nested 400 deep, pass untouched."""
    emu, rx, config = world
    times = _odd_times()
    crafted = [_message(10 + i, f"refund at {t}", t) for i, t in enumerate(times)]
    crafted.append(_message(99, "refund with depth", times[0], extra=_nested(400)))
    emu.inject(Fault.status(200, body=_page(*crafted)), room="r1")
    async with serve(config()) as run:
        await run.until(rx.wait_count(len(crafted), timeout=15))
        # the crafted cursor is unknown to the emulator: the tail resumes by time
        emu.post("r1", "refund real")
        await run.until(rx.wait_count(len(crafted) + 1, timeout=15))
    got = {r.json["data"]["message"]["id"]: r.json["data"]["message"] for r in rx.received}
    for message in crafted:
        assert got[message["id"]] == message


# -- webhook targets and private addresses --------------------------------------------------


def a_delivery() -> Delivery:
    message = {"id": "msg_1", "body": "refund", "createdAt": "2026-11-25T10:00:00Z",
               "editedAt": "0001-01-01T00:00:00Z"}
    return Delivery.for_webhook(Event.from_message(CREATED, "r1", message, ("refunds",), 0.0),
                                "crm", ("refunds",))


class FakeDNS:
    """Stands in for aiohttp's resolver: each name resolves to the addresses given."""

    table: ClassVar[dict[str, list[str]]] = {}

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[dict[str, Any]]:
        addresses = self.table.get(host)
        if addresses is None:
            raise OSError(f"no such host {host}")
        return [{"hostname": host, "host": a, "port": port, "proto": 0,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "flags": socket.AI_NUMERICHOST} for a in addresses]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("answers", [
    ["127.0.0.1"], ["10.1.2.3"], ["192.168.0.10"], ["169.254.169.254"], ["0.0.0.0"],
    ["::1"], ["::ffff:127.0.0.1"], ["::ffff:10.0.0.1"], ["fc00::1"], ["fe80::1"],
    ["2002:7f00:1::"], ["100.64.0.1"], ["93.184.216.34", "127.0.0.1"],
])
async def test_a_name_that_resolves_to_a_private_address_is_refused(monkeypatch, answers,
                                                                    transport_cls):
    """Whatever a DNS answer hides behind a public-looking name, no request is made."""
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        # a refusal that failed would reach the receiver (127.0.0.1) or hang on the others
        FakeDNS.table = {"hooks.example.com": [*answers, "127.0.0.1"]}
        monkeypatch.setattr(guards, "DefaultResolver", FakeDNS)
        client = transport_cls(Webhook("crm", url=f"http://hooks.example.com:{port}/crm",
                                       timeout=2))
        try:
            with pytest.raises(DeliveryPermanentError, match="private"):
                await client.post(a_delivery())
        finally:
            await client.close()
        assert rx.attempts == []


async def test_a_name_that_resolves_to_public_addresses_passes_the_guard(monkeypatch):
    """Public answers are handed on unchanged."""
    FakeDNS.table = {"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1"]}
    monkeypatch.setattr(guards, "DefaultResolver", FakeDNS)
    results = await GuardedResolver().resolve("hooks.example.com", 443)
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:2800:220:1::1"]


@pytest.mark.parametrize("host", ["[::1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]",
                                  "127.1", "2130706433", "0x7f.0.0.1", "[::]", "0.0.0.0",
                                  "app.localhost"])
async def test_literal_loopback_spellings_are_refused_before_any_request(host, transport_cls):
    """IPv6 loopback, IPv4-mapped IPv6 and legacy IPv4 spellings are all refused."""
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        client = transport_cls(Webhook("crm", url=f"http://{host}:{port}/crm", timeout=2))
        try:
            with pytest.raises(DeliveryPermanentError, match="private"):
                await client.post(a_delivery())
        finally:
            await client.close()
        assert rx.attempts == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_a_private_address_is_never_followed(world, status, http_client):
    """The redirect's target (here an internal service) receives nothing; the delivery is
    dead-lettered with a reason that names the redirect."""
    emu, rx, config = world
    internal_hits: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        internal_hits.append(request.path)
        return web.Response(text="secret data")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", internal)
    server = LocalServer(app)
    internal_url = await server.start()
    try:
        front = web.Application()
        async def redirect(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=status,
                                headers={"Location": f"{internal_url}/latest/meta-data"})

        front.router.add_route("*", "/{tail:.*}", redirect)
        front_server = LocalServer(front)
        front_url = await front_server.start()
        try:
            emu.post("r1", "refund please")
            outcomes = Outcomes()
            webhooks = {"crm": {"url": f"{front_url}/crm", "secret": "${TEST_SECRET}"},
                        "mod": {"url": f"{rx.url}/mod", "secret": "${TEST_SECRET}"}}
            async with serve(config(webhooks=webhooks, delivery={"http_client": http_client}),
                             hooks=ServiceHooks(on_outcome=outcomes)) as run:
                await run.until(outcomes.wait_for(lambda o: len(o.items) >= 1, timeout=10))
        finally:
            await front_server.stop()
    finally:
        await server.stop()
    assert internal_hits == []
    assert [(o.ok, o.status) for o in outcomes.items] == [(False, status)]
    assert "redirect" in outcomes.items[0].error


async def test_the_service_survives_hostile_pages_in_one_room_while_serving_another(world):
    """Deep, huge, broken and non-UTF-8 answers in r1, in a row: r2 is served throughout."""
    emu, rx, config = world
    for answer in (DEEP_TEXT, b"\xff\xfe\x00garbage", "[" * 5000, _page(_message(
            1, "refund", "not a time")), "{\"messages\": null}"):
        emu.inject(Fault.status(200, body=answer), room="r1", times=2)
    async with serve(config()) as run:
        for i in range(5):
            emu.post("r2", f"refund {i}")
            await run.until(rx.wait_count(i + 1, timeout=15))
        emu.post("r1", "refund once r1 recovers")
        await run.until(rx.wait_count(6, timeout=30))
    assert emu.pending_faults == 0
