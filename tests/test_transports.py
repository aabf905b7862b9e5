"""Each webhook transport (aiohttp, pyreqwest) keeps the same contract: timeouts,
Retry-After, redirects refused, TLS verified, nothing but the checked address reached."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import importlib.util
import ipaddress
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notifier.config import Webhook
from notifier.delivery import guards, transport
from notifier.delivery.formats import load_config
from notifier.delivery.transport import TransportFactory, WebhookClient, open_transport
from notifier.errors import ConfigError, DeliveryPermanentError, DeliveryTransientError
from notifier.signing import decode_secret
from notifier.testing import WebhookReceiver
from tests.conftest import SECRET
from tests.test_hostile_input import FakeDNS
from tests.test_ssrf import a_delivery

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN = "/hooks/T0/secr3tt0ken"
ROOT = str(Path(__file__).resolve().parents[1])


@contextlib.asynccontextmanager
async def serving(handler: Handler, ssl_context: ssl.SSLContext | None = None,
                  ) -> AsyncIterator[str]:
    """A server on 127.0.0.1 answering every request with ``handler``; yields its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def post(make: TransportFactory, url: str, **settings: object) -> int:
    """POST one delivery through a fresh transport, closing it whatever happens."""
    client = make(Webhook("crm", url=url, allow_private_urls=True, **settings))  # type: ignore[arg-type]
    try:
        return await client.post(a_delivery())
    finally:
        await client.close()


async def test_no_answer_within_the_timeout_is_a_transient_failure(transport_cls):
    """A receiver that never answers: the attempt ends at the timeout, worded without URL."""
    release = asyncio.Event()

    async def never(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    async with serving(never) as base:
        started = time.monotonic()
        with pytest.raises(DeliveryTransientError) as info:
            await post(transport_cls, base + TOKEN, timeout=0.5)
        release.set()
    assert time.monotonic() - started < 5
    assert str(info.value) == "no answer within 0.5s"


async def test_an_answer_that_trickles_in_is_cut_at_the_total_timeout(transport_cls):
    """The timeout bounds the whole attempt, not each read: an answer whose body comes a
    byte at a time, never pausing long, still ends the attempt at ``timeout``."""
    async def trickle(request: web.Request) -> web.StreamResponse:
        await request.read()
        answer = web.StreamResponse(status=500)
        answer.content_length = 100_000
        await answer.prepare(request)
        for _ in range(100_000):
            await answer.write(b"x")
            await asyncio.sleep(0.05)
        return answer

    async with serving(trickle) as base:
        started = time.monotonic()
        with pytest.raises(DeliveryTransientError) as info:
            await post(transport_cls, base + TOKEN, timeout=0.6)
    assert time.monotonic() - started < 3
    assert str(info.value) == "no answer within 0.6s"


@pytest.mark.parametrize(("status", "header", "seconds"), [
    (503, "7", 7.0), (429, "120", 120.0), (503, None, None)])
async def test_retry_after_is_read_from_a_transient_answer(transport_cls, status, header,
                                                           seconds):
    async def busy(request: web.Request) -> web.Response:
        await request.read()
        headers = {"Retry-After": header} if header else {}
        return web.Response(status=status, headers=headers, text="busy")

    async with serving(busy) as base:
        with pytest.raises(DeliveryTransientError) as info:
            await post(transport_cls, base + TOKEN)
    assert (info.value.status, info.value.retry_after) == (status, seconds)
    assert str(info.value).startswith(f"HTTP {status} ") and str(info.value).endswith(": busy")


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_a_permanent_failure_and_not_followed(transport_cls, status):
    followed: list[str] = []

    async def target(request: web.Request) -> web.Response:
        followed.append(request.path)
        return web.Response()

    async with serving(target) as elsewhere:
        async def redirect(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=status, headers={"Location": elsewhere + "/x"})

        async with serving(redirect) as base:
            with pytest.raises(DeliveryPermanentError, match="redirects are not followed"):
                await post(transport_cls, base + TOKEN)
    assert followed == []


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
                 signer: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(hours=1)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _server_context(tmp_path: Path, *, signed_by_ca: bool) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1: self-signed, or signed by a test CA (whose PEM
    file is returned too) that no store trusts unless told."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ec.generate_private_key(ec.SECP256R1()) if signed_by_ca else key
    issuer = "test ca" if signed_by_ca else "127.0.0.1"
    ca_pem = _pem(tmp_path / "ca.pem", _certificate(issuer, ca_key, issuer, ca_key, ca=True))
    leaf = _pem(tmp_path / "cert.pem", _certificate("127.0.0.1", key, issuer, ca_key, ca=False))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf, tmp_path / "key.pem")
    return context, ca_pem


async def test_an_untrusted_certificate_is_refused_before_the_request(transport_cls, tmp_path):
    """TLS is verified: a self-signed receiver gets no request; the text names TLS, no URL."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response()

    async with serving(handler, _server_context(tmp_path, signed_by_ca=False)[0]) as base:
        with pytest.raises(DeliveryTransientError) as info:
            await post(transport_cls, base + TOKEN)
    assert seen == []
    assert "TLS failed" in str(info.value) and "secr3t" not in str(info.value), info.value


async def test_a_signed_request_carries_only_what_verifies(transport_cls):
    """The receiver verifies the signature; no header the transport adds changes the body."""
    async with WebhookReceiver({"/crm": SECRET}) as rx:
        status = await post(transport_cls, rx.url + "/crm", secrets=(decode_secret(SECRET),),
                            headers={"X-Team": "support"})
        assert status == 200
        [got] = rx.received
    assert got.verified is True
    assert got.headers["x-team"] == "support"
    assert got.headers["user-agent"].startswith("roomlio-notifier/")
    assert got.headers["content-type"] == "application/json"


@pytest.mark.parametrize("host", ["localhost", "LocalHost", "ｌｏｃａｌｈｏｓｔ"])
async def test_a_second_dns_answer_is_never_asked_for(monkeypatch, transport_cls, host):
    """DNS rebinding: the guard's resolver says public, the system's resolver would say
    127.0.0.1 (localhost, however spelled). The connection goes to the checked address,
    never to loopback."""
    monkeypatch.setattr(transport, "private_target", lambda url: None)
    FakeDNS.table = {"localhost": ["93.184.216.34"]}
    monkeypatch.setattr(guards, "DefaultResolver", FakeDNS)
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        client = transport_cls(Webhook("crm", url=f"http://{host}:{port}/crm", timeout=1))
        try:
            with pytest.raises(DeliveryTransientError):
                await client.post(a_delivery())
        finally:
            await client.close()
        assert rx.attempts == []


async def test_a_changed_dns_answer_is_checked_again(monkeypatch):
    """After DNS_TTL the pyreqwest transport resolves again; a private answer is refused."""
    pytest.importorskip("pyreqwest")
    from notifier.delivery import transport_reqwest

    monkeypatch.setattr(transport_reqwest, "DNS_TTL", 0.0)
    monkeypatch.setattr(guards, "DefaultResolver", FakeDNS)
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        client = transport_reqwest.ReqwestTransport(
            Webhook("crm", url=f"http://hooks.example.com:{port}/crm", timeout=1))
        try:
            FakeDNS.table = {"hooks.example.com": ["93.184.216.34"]}
            with pytest.raises(DeliveryTransientError):
                await client.post(a_delivery())
            FakeDNS.table = {"hooks.example.com": ["127.0.0.1"]}
            with pytest.raises(DeliveryPermanentError, match=r"private address 127\.0\.0\.1"):
                await client.post(a_delivery())
        finally:
            await client.close()
        assert rx.attempts == []


def test_open_transport_falls_back_to_aiohttp_without_pyreqwest(monkeypatch):
    monkeypatch.setitem(sys.modules, "notifier.delivery.transport_reqwest", None)
    for choice in ("auto", "pyreqwest", "aiohttp"):
        hook = Webhook("crm", url="https://hooks.example.com/x", http_client=choice)
        assert type(open_transport(hook)) is WebhookClient


def test_the_config_refuses_pyreqwest_when_it_is_not_installed(monkeypatch, tmp_path):
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyreqwest" else found(name, *a))
    path = tmp_path / "rules.yaml"
    path.write_text("roomlio:\n  base_url: https://api.roomlio.com/rpc\n  api_key: k"
                    "\nrooms:\n  - key: r1\ndelivery:\n  http_client: pyreqwest\nwebhooks:\n"
                    "  crm:\n    url: https://hooks.example.com/x\nrules:\n  - name: r\n"
                    "    keywords: refund\n    notify: crm\n")
    with pytest.raises(ConfigError, match=r"rules.yaml:7.*pyreqwest is not installed"):
        load_config(str(path), env={})


def test_auto_is_aiohttp_even_where_pyreqwest_is_installed():
    """`auto` is the client measured faster (aiohttp since LeanPost: bench/RESULTS.md,
    "eighth pass"); pyreqwest only when a webhook names it."""
    pytest.importorskip("pyreqwest")
    from notifier.delivery.transport_reqwest import ReqwestTransport

    url = "https://hooks.example.com/x"
    assert type(open_transport(Webhook("crm", url=url))) is WebhookClient
    assert Webhook("crm", url=url).http_client == "auto"
    assert type(open_transport(Webhook("crm", url=url, http_client="pyreqwest"))) \
        is ReqwestTransport




async def test_no_proxy_from_the_environment_is_used(transport_cls, monkeypatch):
    """HTTP_PROXY and friends would take the request past the SSRF guard: ignored."""
    proxied: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        proxied.append(str(request.url))
        return web.Response(status=502)

    async with serving(proxy) as proxy_url, WebhookReceiver() as rx:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert await post(transport_cls, rx.url + "/crm") == 200
        assert len(rx.received) == 1
    assert proxied == []


async def test_a_host_whose_answers_keep_changing_holds_few_clients(monkeypatch):
    """Each changed answer builds a pinned client; the replaced ones are closed once their
    requests are over, so a rotating DNS answer does not pile clients up for days."""
    pytest.importorskip("pyreqwest")
    from notifier.delivery import transport_reqwest

    now = [0.0]
    monkeypatch.setattr(transport_reqwest, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(guards, "DefaultResolver", FakeDNS)
    client = transport_reqwest.ReqwestTransport(
        Webhook("crm", url="http://hooks.example.com/crm", timeout=2))
    try:
        pinned = []
        for i in range(30):
            FakeDNS.table = {"hooks.example.com": [f"93.184.216.{30 + i % 2}"]}
            now[0] += transport_reqwest.DNS_TTL + 0.5
            pinned.append(await client._current())
            assert len(client._retired) <= 2, len(client._retired)
        assert len({id(c) for c, _ in pinned}) == 30  # each change did build a new client
    finally:
        await client.close()


_POST_ONCE = """
import asyncio, sys
from notifier.config import Webhook
from notifier.delivery.transport import open_transport
from tests.test_ssrf import a_delivery

async def main():
    client = open_transport(Webhook("crm", url=sys.argv[1], allow_private_urls=True,
                                    http_client=sys.argv[2]))
    try:
        print(await client.post(a_delivery()))
    finally:
        await client.close()

asyncio.run(main())
"""


async def test_a_private_ca_in_the_system_trust_store_is_trusted(http_client, tmp_path):
    """A receiver whose certificate a private CA signed is reached once the system's trust
    store holds that CA (SSL_CERT_FILE here): both clients read the same store."""
    context, ca_pem = _server_context(tmp_path, signed_by_ca=True)
    async with serving(_ok, context) as base:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _POST_ONCE, base + "/crm", http_client,
            env={**os.environ, "SSL_CERT_FILE": str(ca_pem)},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert out.decode().strip() == "200", err.decode()[-2000:]


async def _ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response()


@pytest.mark.parametrize("headers", [{"X-Token": "t0ken\r\nX-Evil: 1"}, {"X-Token": "t0ken\n"}])
async def test_a_header_the_client_refuses_is_a_permanent_failure_naming_no_value(
        transport_cls, headers):
    """A configured header value the HTTP client will not send (a line break): dead-letter
    at once, with a text that does not repeat the value."""
    async with WebhookReceiver() as rx:
        with pytest.raises(DeliveryPermanentError) as info:
            await post(transport_cls, rx.url + "/crm", headers=headers)
        assert rx.attempts == []
    assert "cannot be built" in str(info.value) and "t0ken" not in str(info.value)



async def _answer_late(request: web.Request) -> web.StreamResponse:
    """A 200 whose body follows its head in a later write (not there when the head is)."""
    await request.read()
    response = web.StreamResponse(status=200, headers={"Content-Length": "2"})
    await response.prepare(request)
    await asyncio.sleep(0.05)  # the head goes out alone; what is asserted is awaited
    await response.write(b"ok")
    await response.write_eof()
    return response


async def _answer_now(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=int(request.query["status"]), text=request.query["text"])


@pytest.mark.parametrize(("handler", "query"), [
    (_answer_now, "?status=200&text=ok"),
    (_answer_now, "?status=204&text="),
    (_answer_now, "?status=202&text=" + "x" * 3000),
    (_answer_late, ""),
])
async def test_a_2xx_answer_leaves_its_connection_to_the_next_delivery(transport_cls,
                                                                       handler, query):
    """Whether the 2xx's body came with its head or after it, the next delivery reuses
    the connection: a body is dropped or read, never left to close the connection."""
    peers: list[object] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport
                     else None)
        return await handler(request)

    async with serving(answer) as url:
        client = transport_cls(Webhook("crm", url=url + "/crm" + query,
                                       allow_private_urls=True))
        try:
            statuses = [await client.post(a_delivery()) for _ in range(3)]
        finally:
            await client.close()
    assert statuses == [int(query.split("&")[0][8:]) if query else 200] * 3
    assert len(peers) == 3 and len(set(peers)) == 1, peers


async def test_a_receivers_cookie_is_never_sent_back(transport_cls):
    """A webhook POST is the same request every time: a cookie one answer set does not
    ride on the next delivery (either client), so a receiver cannot tie deliveries to a
    session or make the notifier carry its state."""
    cookies: list[str | None] = []

    async def set_cookie(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        response = web.Response(status=200, text="ok")
        response.set_cookie("session", "abc123", path="/")
        return response

    async with serving(set_cookie) as base:
        # a host name: aiohttp's cookie jar keeps no cookie of an IP address anyway
        url = base.replace("127.0.0.1", "localhost") + TOKEN
        client = transport_cls(Webhook("crm", url=url, allow_private_urls=True))
        try:
            for _ in range(3):
                assert await client.post(a_delivery()) == 200
        finally:
            await client.close()
    assert cookies == [None, None, None]
