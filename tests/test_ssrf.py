"""Webhook targets on private addresses are refused unless allowed; redirects never followed."""

from __future__ import annotations

import pytest

from notifier.config import Webhook
from notifier.delivery.http import WebhookClient
from notifier.errors import DeliveryPermanentError
from notifier.events import CREATED, Delivery, Event
from notifier.testing import WebhookReceiver


def a_delivery() -> Delivery:
    message = {"id": "msg_1", "body": "refund", "createdAt": "2026-11-25T10:00:00Z",
               "editedAt": "0001-01-01T00:00:00Z"}
    return Delivery.for_webhook(Event.from_message(CREATED, "r1", message, ("refunds",), 0.0),
                                "crm", ("refunds",))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_private_targets_are_refused_before_any_request(host):
    """A literal private address, or a name whose DNS answer is private, is never contacted."""
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        client = WebhookClient(Webhook("crm", url=f"http://{host}:{port}/crm"))
        try:
            with pytest.raises(DeliveryPermanentError, match="private"):
                await client.post(a_delivery())
        finally:
            await client.close()
        assert rx.attempts == []


async def test_private_targets_are_reached_when_allowed():
    """allow_private_urls: true lets the same request through."""
    async with WebhookReceiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        client = WebhookClient(Webhook("crm", url=f"http://localhost:{port}/crm",
                                       allow_private_urls=True))
        try:
            assert await client.post(a_delivery()) == 200
        finally:
            await client.close()
        assert len(rx.received) == 1


async def test_an_unbuildable_request_is_a_permanent_failure_not_a_crash():
    """Credentials in the URL plus an Authorization header: dead-letter, never a stuck task."""
    async with WebhookReceiver() as rx:
        client = WebhookClient(Webhook("crm", url=rx.url.replace("//", "//user:pw@") + "/crm",
                                       allow_private_urls=True,
                                       headers={"Authorization": "Bearer t0ken"}))
        try:
            with pytest.raises(DeliveryPermanentError) as info:
                await client.post(a_delivery())
        finally:
            await client.close()
        assert "pw" not in str(info.value) and "t0ken" not in str(info.value)
        assert rx.attempts == []
