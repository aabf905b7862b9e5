"""The aiohttp transport's request writes a small body without a task of its own
(notifier.delivery.inline_request), and sends every other body as aiohttp does."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from notifier.config import Webhook
from notifier.delivery import inline_request
from notifier.delivery.transport import WebhookClient
from notifier.events import CREATED, Delivery, Event
from notifier.signing import decode_secret
from notifier.testing import WebhookReceiver
from tests.conftest import SECRET


def _delivery(number: int, text: str = "refund") -> Delivery:
    message = {"id": f"msg_{number}", "body": text, "createdAt": "2026-11-25T10:00:00Z",
               "editedAt": "0001-01-01T00:00:00Z"}
    return Delivery.for_webhook(Event.from_message(CREATED, "r1", message, ("refunds",), 0.0),
                                "crm", ("refunds",))


class _CountingTasks:
    """A task factory counting the tasks that write a request's body (the receiver, in
    the same loop, makes tasks of its own); the default task otherwise."""

    def __init__(self) -> None:
        self.created = 0

    def __call__(self, loop: asyncio.AbstractEventLoop,
                 coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
                 **kwargs: Any) -> asyncio.Task[Any]:
        if getattr(coro, "__qualname__", "") == "ClientRequest.write_bytes":
            self.created += 1
        return asyncio.Task(coro, loop=loop, **kwargs)


async def _tasks_per_post(client: WebhookClient, rx: WebhookReceiver) -> int:
    await client.post(_delivery(0))  # the connection is opened and pooled
    loop = asyncio.get_running_loop()
    counter = _CountingTasks()
    loop.set_task_factory(counter)
    try:
        for number in range(1, 4):
            assert await client.post(_delivery(number)) == 200
    finally:
        loop.set_task_factory(None)
    await rx.wait_count(4)
    return counter.created


@pytest.mark.skipif(not inline_request.INLINE, reason="aiohttp starts its writer eagerly")
@pytest.mark.parametrize(("inline", "tasks"), [(True, 0), (False, 3)])
async def test_a_webhook_post_creates_no_task_on_python_311(monkeypatch, inline, tasks):
    """A delivery's POST on a pooled connection writes its body without a task of its own;
    with the inline path off, aiohttp's own ``send`` makes one per POST (so the measure
    can fail)."""
    monkeypatch.setattr(inline_request, "INLINE", inline)
    async with WebhookReceiver({"/crm": SECRET}) as rx:
        client = WebhookClient(Webhook("crm", url=rx.url_for("/crm"), allow_private_urls=True,
                                       secrets=(decode_secret(SECRET),)))
        try:
            created = await _tasks_per_post(client, rx)
        finally:
            await client.close()
    assert created == tasks
    assert all(r.verified for r in rx.received)


async def test_a_body_too_large_to_write_inline_arrives_whole_and_signed():
    """A body above the inline limit goes through aiohttp's own ``send``: it arrives whole,
    its signature verifies, and the next small one still does too."""
    big = "refund " * 40_000  # 280 kB, written from aiohttp's task with drains
    async with WebhookReceiver({"/crm": SECRET}) as rx:
        client = WebhookClient(Webhook("crm", url=rx.url_for("/crm"), allow_private_urls=True,
                                       secrets=(decode_secret(SECRET),)))
        try:
            assert await client.post(_delivery(1, big)) == 200
            assert await client.post(_delivery(2)) == 200
        finally:
            await client.close()
        await rx.wait_count(2)
    first, second = rx.received
    assert first.verified and second.verified
    assert first.json["data"]["message"]["body"] == big
    assert second.json["data"]["message"]["id"] == "msg_2"


def _request_args(loop: asyncio.AbstractEventLoop, session: Any, headers: Any,
                  **changed: Any) -> dict[str, Any]:
    """The arguments aiohttp's session gives its request class, for a plain POST."""
    url = changed.pop("url", URL("http://127.0.0.1:8080/crm?a=1"))
    args = {"params": {}, "headers": headers, "skip_auto_headers": None, "data": b'{"a":1}',
            "cookies": session.cookie_jar.filter_cookies(url), "auth": None,
            "version": aiohttp.HttpVersion11, "compress": None, "chunked": None,
            "expect100": False, "loop": loop, "response_class": None, "proxy": None,
            "proxy_auth": None, "timer": None, "session": session, "ssl": True,
            "server_hostname": None, "proxy_headers": None, "traces": [],
            "trust_env": False}
    return {"method": "POST", "url": url, **args, **changed}


def _state(request: aiohttp.ClientRequest) -> dict[str, Any]:
    """What a request holds, comparable between two of them."""
    state = dict(vars(request))
    state.pop("_plain_length", None)  # ours alone: compared with Content-Length below
    state["headers"] = list(request.headers.items())
    body = state.pop("_body")
    state["_body"] = (type(body), {k: v for k, v in vars(body).items() if k != "_headers"},
                      list(body.headers.items()))
    for made_each_time in ("_timer", "_continue"):  # compared by type: a new one each
        if made_each_time in state:
            state[made_each_time] = type(state[made_each_time])
    return state


_HEADERS = {"content-type": "application/json", "user-agent": "roomlio-notifier/1",
            "webhook-id": "msg_1", "X-Token": "t"}


@pytest.mark.skipif(not inline_request.LEAN, reason="another aiohttp minor: not mirrored")
@pytest.mark.parametrize("changed", [
    {}, {"url": URL("https://hooks.example:8443/a")}, {"headers": {"content-type": "a/b"}},
    {"ssl": False}, {"server_hostname": "h"},
    # not plain: aiohttp's own constructor
    {"data": b""}, {"data": b"x" * 60_000}, {"data": "text"}, {"compress": "deflate"},
    {"expect100": True}, {"chunked": True}, {"params": {"b": "2"}},
    {"url": URL("http://u:p@127.0.0.1/crm")}, {"url": URL("http://127.0.0.1/crm#f")},
    {"headers": {**_HEADERS, "Host": "other"}}, {"headers": {**_HEADERS, "content-length": "7"}},
    {"headers": {**_HEADERS, "Expect": "100-continue"}},
    {"headers": {**_HEADERS, "Content-Encoding": "gzip"}},
    {"headers": {**_HEADERS, "Transfer-Encoding": "chunked"}},
    {"headers": {"webhook-id": "1"}},  # no Content-Type
    {"skip_auto_headers": ["Accept"]},
])
async def test_a_request_is_built_as_aiohttp_builds_it(changed):
    """The request class's own constructor for a plain POST leaves the request exactly as
    aiohttp's would (attributes, headers in order, body); anything else is aiohttp's."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        headers = session._prepare_headers(changed.pop("headers", _HEADERS))
        args = _request_args(asyncio.get_running_loop(), session, headers, **changed)
        ours = inline_request.InlineBodyRequest(**args)
        theirs = aiohttp.ClientRequest(**args)
        assert _state(ours) == _state(theirs)
        if ours._plain_length is not None:  # what ``send`` writes as the body's length
            assert ours._plain_length == theirs._get_content_length()


async def test_a_connector_that_closes_each_connection_gets_its_connection_close_header():
    """A connector with ``force_close`` sends ``Connection: close`` (aiohttp's ``send`` adds
    it), so the plain path leaves such a request to aiohttp."""
    async with WebhookReceiver() as rx:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                        request_class=inline_request.InlineBodyRequest)
        async with session, session.post(rx.url + "/crm", data=b'{"a":1}', headers={
                "content-type": "application/json"}) as resp:
            assert resp.status == 200
        await rx.wait_count(1)
    assert rx.received[0].headers["connection"] == "close"
