"""A plain webhook POST sent by ``LeanPost`` (notifier.delivery.lean_post) and the same POST
sent by aiohttp's ``ClientSession._request`` put the same bytes on the wire and end the
same way: the same status or error, the same connections left open or closed."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from notifier.config import Webhook
from notifier.delivery import inline_request, lean_post, transport
from notifier.delivery.transport import WebhookClient
from notifier.errors import DeliveryError
from tests.test_ssrf import a_delivery

pytestmark = pytest.mark.skipif(not inline_request.LEAN, reason="another aiohttp minor")

#: A script: the bytes answered to each request (None: no answer, the connection held
#: open) and whether the connection is closed after them.
Script = tuple[bytes | None, bool]


class _Wire:
    """A raw HTTP/1.1 server on 127.0.0.1 that records every byte it reads and answers
    each request as scripted (a real part: what arrives is what the client wrote)."""

    def __init__(self, answer: bytes | None, close: bool) -> None:
        self.answer, self.close = answer, close
        self.received = bytearray()
        self.requests = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.received += head + await reader.readexactly(length)
                self.requests += 1
                if self.answer is None:
                    await reader.read()  # held until the client gives up
                    return
                writer.write(self.answer)
                await writer.drain()
                if self.close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def _wire(answer: bytes | None, close: bool = False) -> AsyncIterator[tuple[str, _Wire]]:
    wire = _Wire(answer, close)
    server = await asyncio.start_server(wire.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/hooks/crm?x=1", wire
        server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _post_once(url: str, lean: bool, plain: bool = True,
                     **settings: Any) -> tuple[object, tuple[int, int]]:
    """One delivery's outcome, sent by the lean path or by aiohttp's ``_request`` (the
    path asserted: the lean path steps aside for a POST not ``plain``), and the
    connector's (acquired, pooled) connections after it."""
    settings.setdefault("allow_private_urls", True)
    client = WebhookClient(Webhook("crm", url=url, timeout=0.5, **settings))
    post = client._open()
    taken: list[str] = []
    send, request = post._send, post._request
    post._send = lambda req: (taken.append("lean"), send(req))[1]  # type: ignore[method-assign]
    post._request = lambda body, headers: (  # type: ignore[method-assign]
        taken.append("request"), request(body, headers))[1]
    if not lean:
        post._target = None
    try:
        try:
            outcome: object = await client.post(a_delivery())
        except DeliveryError as exc:
            outcome = (type(exc).__name__, str(exc), exc.status, exc.retry_after)
        assert taken == ["lean" if lean and plain else "request"]
        connector: Any = client._session.connector if client._session else None
        await asyncio.sleep(0)  # a released connection's callbacks run
        return outcome, (len(connector._acquired),
                         sum(len(c) for c in connector._conns.values()))
    finally:
        await client.close()


_BIG = b"e" * 100_000
_GZIP = gzip.compress(b"went bang, compressed")
_CASES: dict[str, Script] = {
    "204": (b"HTTP/1.1 204 No Content\r\n\r\n", False),
    "200 with a body": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    "200, then closed": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
    "200 read to its close": (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", True),
    "500 read to its close": (b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nwent bang", True),
    "a header line too long": (b"HTTP/1.1 200 OK\r\nX-Long: %s\r\nContent-Length: 0\r\n\r\n"
                               % (b"a" * 9000), False),
    "a status line too long": (b"HTTP/1.1 500 %s\r\nContent-Length: 0\r\n\r\n" % (b"o" * 9000),
                               False),
    "too many headers": (b"HTTP/1.1 200 OK\r\n%sContent-Length: 0\r\n\r\n"
                         % b"".join(b"X-%d: 1\r\n" % n for n in range(200)), False),
    "500 with a body": (b"HTTP/1.1 500 Oops\r\nContent-Length: 9\r\n\r\nwent bang", False),
    "500 gzipped": (b"HTTP/1.1 500 Oops\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(_GZIP), _GZIP), False),
    "404 with a body": (b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", False),
    "429 Retry-After": (b"HTTP/1.1 429 Slow\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
                        False),
    "503 Retry-After date": (b"HTTP/1.1 503 Busy\r\nRetry-After: Wed, 21 Oct 2099 07:28:00 GMT"
                             b"\r\nContent-Length: 0\r\n\r\n", False),
    "302 not followed": (b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\n"
                         b"Content-Length: 0\r\n\r\n", False),
    "oversized answer": (b"HTTP/1.1 500 Big\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(_BIG), _BIG), False),
    "closed mid-body": (b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\nshort", True),
    "closed mid-headers": (b"HTTP/1.1 200 OK\r\nContent-Le", True),
    "closed, no answer": (b"", True),
    "not HTTP": (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", True),
    "no answer (timeout)": (None, False),
}


@pytest.mark.parametrize("case", list(_CASES))
async def test_the_lean_path_sends_and_ends_as_aiohttps_request(case):
    """Each answer, taken both ways: the same request bytes arrive, the delivery ends with
    the same status or error, and the same connections stay pooled or are closed."""
    answer, close = _CASES[case]
    results = []
    async with _wire(answer, close) as (url, wire):
        for lean in (True, False):
            outcome, state = await _post_once(url, lean)
            results.append((outcome, state, bytes(wire.received), wire.requests))
            wire.received.clear()
            wire.requests = 0
    assert results[0] == results[1]
    assert results[0][3] == 1  # one request: no retry, no redirect followed


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 500 Oops\r\nContent-Length: 9\r\n\r\nwent bang",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 429 Slow\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n",
    # a whole stray answer after the answer, read as the next one both ways
    b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 500 Early\r\nContent-Length: 0\r\n\r\n",
])
async def test_a_kept_connections_next_answers_end_as_with_aiohttps_request(answer):
    """Three deliveries in turn on one kept connection (its response parser kept by the
    lean path, made again by ``_request``): the same outcomes, bytes and connections."""
    results = await _three_on_one_connection(answer)
    assert results[0] == results[1]


async def test_stray_bytes_on_a_kept_connection_fail_the_next_delivery_not_a_later_one():
    """A receiver that writes part of an answer nobody asked for on a kept connection:
    ``_request``'s new parser drops it; the kept parser reads it as the start of the
    next answer, which is then malformed: that delivery fails (transient, so retried),
    its connection is closed and the next delivery goes out on a new one."""
    stray = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Le"
    lean, theirs = await _three_on_one_connection(stray)
    assert theirs[0] == [204, 204, 204]
    assert lean[0][0] == lean[0][2] == 204
    kind, text, _ = lean[0][1]  # type: ignore[misc]
    assert kind == "DeliveryTransientError"
    assert text.startswith("malformed answer: Invalid header token")
    assert lean[1:] == theirs[1:]  # nothing left acquired; the same three requests sent


async def _three_on_one_connection(answer: bytes) -> list[tuple[list[object], int, bytes]]:
    """Three deliveries' outcomes, the connections left acquired and the bytes sent,
    by the lean path and then by ``_request``."""
    results = []
    async with _wire(answer) as (url, wire):
        for lean in (True, False):
            client = WebhookClient(Webhook("crm", url=url, allow_private_urls=True))
            post = client._open()
            if not lean:
                post._target = None
            outcomes: list[object] = []
            for _ in range(3):
                try:
                    outcomes.append(await client.post(a_delivery()))
                except DeliveryError as exc:
                    outcomes.append((type(exc).__name__, str(exc), exc.status))
                await asyncio.sleep(0.01)  # stray bytes, if any, reach the kept connection
            connector: Any = client._session.connector if client._session else None
            results.append((outcomes, len(connector._acquired), bytes(wire.received)))
            wire.received.clear()
            await client.close()
    return results


@pytest.mark.parametrize(("headers", "plain"), [
    ({"X-Token": "t"}, True), ({"Accept": "text/plain", "Accept-Encoding": "identity"}, True),
    # a name the notifier's own headers have, or two names equal but for case:
    # aiohttp merges them, so not plain
    ({"User-Agent": "theirs/1"}, False), ({"Content-Type": "text/plain"}, False),
    ({"X-A": "1", "x-a": "2"}, False),
    ({"Expect": "100-continue"}, False),  # aiohttp waits for a 100 first: not plain
])
async def test_a_webhooks_own_headers_arrive_as_aiohttp_sends_them(headers, plain):
    """Headers a webhook's config may set, those aiohttp adds by default or rewrites
    included: the same bytes arrive and the delivery ends the same way, both ways."""
    results = []
    async with _wire(b"HTTP/1.1 204 No Content\r\n\r\n") as (url, wire):
        for lean in (True, False):
            results.append((await _post_once(url, lean, plain, headers=headers),
                            bytes(wire.received)))
            wire.received.clear()
    assert results[0] == results[1]


@pytest.mark.parametrize("headers", [
    {"content-type": "a/b"}, {"Content-Type": "a/b", "accept": "x/y"},
    {"content-type": "a/b", "Accept-Encoding": "br", "Accept": "y/z", "User-Agent": "u"},
])
async def test_the_headers_aiohttp_adds_are_added_as_it_adds_them(headers):
    """Called directly with headers that leave aiohttp's defaults (Accept,
    Accept-Encoding, User-Agent) to add, or not: the same bytes arrive both ways."""
    received = []
    async with _wire(b"HTTP/1.1 204 No Content\r\n\r\n") as (url, wire):
        client = WebhookClient(Webhook("crm", url=url, allow_private_urls=True))
        post = client._open()
        for send in (post, post._request):
            async with await send(b"{}", headers) as resp:
                assert resp.status == 204
            received.append(bytes(wire.received))
            wire.received.clear()
        assert post._added[tuple(headers)] is not None  # the first was lean
        await client.close()
    assert received[0] == received[1]


async def test_a_refused_connection_ends_as_aiohttps_request():
    """Nothing listening: the same transient error both ways, no connection left."""
    url = f"http://127.0.0.1:{_free_port()}/crm"
    lean, theirs = [await _post_once(url, path) for path in (True, False)]
    assert lean == theirs
    assert lean[0][0] == "DeliveryTransientError"  # type: ignore[index]


async def test_a_private_peer_is_refused_at_connect_on_the_lean_path(monkeypatch):
    """With the literal and DNS checks blind, the socket factory still refuses 127.0.0.1
    before a byte is sent, both ways, with the same error."""
    monkeypatch.setattr(transport, "private_target", lambda url: None)
    async with _wire(b"HTTP/1.1 204 No Content\r\n\r\n") as (url, wire):
        lean, theirs = [await _post_once(url, path, allow_private_urls=False)
                        for path in (True, False)]
    assert lean == theirs
    assert "private address" in lean[0][1]  # type: ignore[index]
    assert wire.requests == 0


async def test_an_os_error_while_sending_is_mapped_as_aiohttp_maps_it(monkeypatch):
    """An ``OSError`` out of the request's ``send`` (a reset while writing; no real server
    makes one on demand) becomes aiohttp's ``ClientOSError`` and the same delivery error,
    the connection closed, both ways."""
    async def reset(self: Any, conn: Any) -> Any:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(inline_request.InlineBodyRequest, "send", reset)
    async with _wire(b"HTTP/1.1 204 No Content\r\n\r\n") as (url, _):
        lean, theirs = [await _post_once(url, path) for path in (True, False)]
    assert lean == theirs
    assert lean[1] == (0, 0)


async def test_a_post_that_is_not_plain_goes_through_aiohttps_request():
    """A URL with credentials is aiohttp's to strip: the lean path steps aside."""
    async with _wire(b"HTTP/1.1 204 No Content\r\n\r\n") as (url, wire):
        client = WebhookClient(Webhook("crm", url=url.replace("//", "//u:p@"),
                                       allow_private_urls=True))
        assert client._open()._target is None
        assert await client.post(a_delivery()) == 204
        await client.close()
    assert b"\r\nAuthorization: Basic dTpw\r\n" in wire.received


_WEBHOOK_SESSION = {"timeout": aiohttp.ClientTimeout(total=None),
                    "cookie_jar": None, "request_class": inline_request.InlineBodyRequest}


@pytest.mark.parametrize("changed", [
    {}, {"headers": {"x-a": "1"}}, {"cookie_jar": "default"}, {"timeout": "default"},
    {"raise_for_status": True}, {"base_url": "http://127.0.0.1/"},
    {"trace_configs": [aiohttp.TraceConfig()]}, {"request_class": aiohttp.ClientRequest},
    {"skip_auto_headers": ["Accept"]}, {"proxy": "http://127.0.0.1:1"}, {"trust_env": True},
])
async def test_only_a_session_configured_as_the_webhooks_is_lean(changed):
    """A session with any option ``_request`` acts on is not taken for a lean one."""
    options: dict[str, Any] = {**_WEBHOOK_SESSION, **changed}
    options["cookie_jar"] = (aiohttp.CookieJar() if options["cookie_jar"] == "default"
                             else aiohttp.DummyCookieJar())
    if options["timeout"] == "default":
        del options["timeout"]
    async with aiohttp.ClientSession(**options) as session:
        assert lean_post.lean_session(session) is (not changed)
