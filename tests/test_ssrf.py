"""Webhook targets on private addresses are refused unless allowed; redirects never followed."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.config import Webhook
from notifier.delivery import transport
from notifier.delivery.formats import check_config
from notifier.delivery.transport import TransportFactory
from notifier.errors import DeliveryPermanentError
from notifier.events import CREATED, Delivery, Event
from notifier.testing import WebhookReceiver
from notifier.util.netguard import connect_host, private_literal
from tests.conftest import notifier_command


def a_delivery() -> Delivery:
    message = {"id": "msg_1", "body": "refund", "createdAt": "2026-11-25T10:00:00Z",
               "editedAt": "0001-01-01T00:00:00Z"}
    return Delivery.for_webhook(Event.from_message(CREATED, "r1", message, ("refunds",), 0.0),
                                "crm", ("refunds",))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_private_targets_are_refused_before_any_request(host, transport_cls):
    """A literal private address, or a name whose DNS answer is private, is never contacted."""
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        client = transport_cls(Webhook("crm", url=f"http://{host}:{port}/crm"))
        try:
            with pytest.raises(DeliveryPermanentError, match="private"):
                await client.post(a_delivery())
        finally:
            await client.close()
        assert rx.attempts == []


async def test_private_targets_are_reached_when_allowed(transport_cls):
    """allow_private_urls: true lets the same request through."""
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        client = transport_cls(Webhook("crm", url=f"http://localhost:{port}/crm",
                                       allow_private_urls=True))
        try:
            assert await client.post(a_delivery()) == 200
        finally:
            await client.close()
        assert len(rx.received) == 1


async def test_an_unbuildable_request_is_a_permanent_failure_not_a_crash(transport_cls):
    """Credentials in the URL plus an Authorization header: dead-letter, never a stuck task."""
    async with WebhookReceiver() as rx:
        client = transport_cls(Webhook("crm", url=rx.url.replace("//", "//user:pw@") + "/crm",
                                       allow_private_urls=True,
                                       headers={"Authorization": "Bearer t0ken"}))
        try:
            with pytest.raises(DeliveryPermanentError) as info:
                await client.post(a_delivery())
        finally:
            await client.close()
        assert "pw" not in str(info.value) and "t0ken" not in str(info.value)
        assert rx.attempts == []


# -- the host as the HTTP client reads it (issue 13, item 1) ---------------------------------

#: Hosts that yarl (and so aiohttp) reads as a loopback address, spelled every way we know:
#: NFKC/IDNA folds full-width, circled, mathematical and superscript digits and the
#: ideographic full stops into an ASCII IPv4 literal, which aiohttp connects to directly.
LOOPBACK_SPELLINGS = [
    "１２７.０.０.１", "127。0。0。1", "①②⑦.0.0.1", "127．0．0．1", "127｡0｡0｡1",
    "𝟏𝟐𝟕.𝟎.𝟎.𝟏", "¹²⁷.0.0.1", "①②⑦。⓪。⓪。①", "１２７.０.０.１.", "127.0.0.1.",
    "ＬＯＣＡＬＨＯＳＴ", "localhost.", "[::ffff:127.0.0.1]", "[::1]", "[0:0:0:0:0:0:0:1]",
    "[::ffff:7f00:1]", "2130706433", "0x7f.0.0.1", "127.1", "0177.0.0.1", "0", "０.０.０.０",
]
#: The cloud metadata address, spelled the same ways (nothing listens there in tests).
METADATA_SPELLINGS = ["１６９.２５４.１６９.２５４", "169。254。169。254", "①⑥⑨.②⑤④.①⑥⑨.②⑤④",
                      "169．254．169．254", "[::ffff:169.254.169.254]"]

CONFIG = """\
roomlio:
  base_url: https://api.roomlio.com/rpc
  api_key: rk_test_key_1234
rooms:
  - key: support-42
webhooks:
  crm:
    url: {url}
rules:
  - name: refunds
    keywords: refund
    notify: crm
"""


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + METADATA_SPELLINGS)
def test_check_refuses_every_spelling_of_a_private_address(tmp_path, host):
    """`check` reads the host as aiohttp will and names the line of the url."""
    path = tmp_path / "rules.yaml"
    path.write_text(CONFIG.format(url=f"http://{host}:8080/hook"), encoding="utf-8")
    found = check_config(str(path), {})
    assert [(p.line, p.key) for p in found] == [(8, "webhooks.crm.url")], found
    assert str(found[0]).startswith(f"{path}:8: webhooks.crm.url: url points to a private "
                                    "address (")
    assert found[0].message.endswith("; set allow_private_urls: true to allow it")


def test_check_cli_prints_file_and_line_for_a_full_width_address(tmp_path):
    """`notifier check` exits with the config status and one located line per target."""
    path = tmp_path / "rules.yaml"
    path.write_text(CONFIG.format(url="http://１６９.２５４.１６９.２５４/latest"),
                    encoding="utf-8")
    done = subprocess.run(notifier_command("check", "-c", str(path)), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert (f"{path}:8: webhooks.crm.url: url points to a private address (169.254.169.254, "
            "written '１６９.２５４.１６９.２５４')") in done.stderr + done.stdout


DIGITS = {d: [str(d), chr(0xFF10 + d), chr(0x1D7CE + d), chr(0x1D7D8 + d), chr(0x1D7F6 + d),
              chr(0x2460 + d - 1) if d else "\u24ea", "⁰¹²³⁴⁵⁶⁷⁸⁹"[d]] for d in range(10)}
DOTS = [".", "。", "．", "｡"]


@st.composite
def respelled(draw: st.DrawFn, address: str) -> str:
    """``address`` with each digit and dot replaced by a character NFKC folds onto it."""
    return "".join(draw(st.sampled_from(DOTS)) if c == "." else
                   draw(st.sampled_from(DIGITS[int(c)])) for c in address)


@given(st.sampled_from(["127.0.0.1", "10.0.0.7", "169.254.169.254", "192.168.1.20",
                        "0.0.0.0", "100.64.3.2"]).flatmap(lambda a: respelled(a).map(
                            lambda s: (a, s))))
def test_any_unicode_spelling_of_a_private_address_is_judged_as_the_client_reads_it(pair):
    """Whatever mix of folded digits and dots: the guard sees the address aiohttp connects to."""
    address, spelling = pair
    url = f"http://{spelling}:8080/hook"
    assert connect_host(url) == address  # so the property below is about that address
    assert private_literal(connect_host(url) or "") == address


async def refused(make: TransportFactory, url: str) -> DeliveryPermanentError:
    """POST once with allow_private_urls: false; the permanent error it must end in."""
    client = make(Webhook("crm", url=url, timeout=2))
    try:
        with pytest.raises(DeliveryPermanentError) as info:
            await client.post(a_delivery())
    finally:
        await client.close()
    return info.value


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_sending_to_any_spelling_of_loopback_posts_nothing(host, transport_cls):
    """A real receiver on 127.0.0.1 gets no request; the delivery fails as private."""
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        error = await refused(transport_cls, f"http://{host}:{port}/crm")
        assert rx.attempts == []
    assert "private address" in str(error)
    assert "allow_private_urls" in str(error)


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
async def test_sending_to_any_spelling_of_the_metadata_address_is_refused(host, transport_cls):
    """169.254.169.254 in any spelling is refused before a connection is tried."""
    error = await refused(transport_cls, f"http://{host}/latest/meta-data")
    assert "private address" in str(error)


async def test_the_peer_address_is_checked_even_when_the_host_checks_pass(monkeypatch,
                                                                         transport_cls):
    """Defence in depth: with the literal check and the resolver's check both blind, the
    connection's own peer address (127.0.0.1) is still refused before a byte is sent."""
    monkeypatch.setattr(transport, "private_target", lambda url: None)

    class Blind(transport.GuardedResolver):
        async def resolve(self, host: str, port: int = 0,
                          family: socket.AddressFamily = socket.AF_INET) -> Any:
            return await self._inner.resolve(host, port, family)

    monkeypatch.setattr(transport, "GuardedResolver", Blind)
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        for host in ("127.0.0.1", "localhost", "１２７.０.０.１"):
            error = await refused(transport_cls, f"http://{host}:{port}/crm")
            assert "private address" in str(error), error
        assert rx.attempts == []


@pytest.mark.parametrize("host", ["ex\u200bample.com", "\ufffd.example.com"])
def test_check_refuses_a_host_the_http_client_cannot_read(tmp_path, host):
    """A host that passes urlsplit but not yarl would fail every send: `check` says so."""
    path = tmp_path / "rules.yaml"
    path.write_text(CONFIG.format(url=f"https://{host}/hook"), encoding="utf-8")
    found = check_config(str(path), {})
    assert [(p.line, p.key) for p in found] == [(8, "webhooks.crm.url")], found
    assert "the HTTP client cannot read this url's host" in found[0].message
