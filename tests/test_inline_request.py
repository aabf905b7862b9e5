"""The aiohttp transport's request writes a small body without a task of its own
(notifier.delivery.inline_request), and sends every other body as aiohttp does."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

import pytest

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
