"""The webhook receiver, fed over real HTTP with signatures from the standardwebhooks package."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from standardwebhooks.webhooks import Webhook

from notifier.signing import SignatureError
from notifier.testing import Fault, Received, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver({"/crm": SECRET}) as receiver:
        yield receiver


def signed(payload: Any, msg_id: str = "msg_1", *, secret: str = SECRET,
           at: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload)
    at = at or datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }
    return body.encode(), headers


async def send(session: aiohttp.ClientSession, url: str, body: bytes,
               headers: dict[str, str], client_timeout: float = 10) -> tuple[int, dict[str, str]]:
    async with session.post(url, data=body, headers=headers,
                            timeout=aiohttp.ClientTimeout(total=client_timeout)) as resp:
        await resp.read()
        return resp.status, dict(resp.headers)


async def test_accepts_a_request_signed_by_standardwebhooks(
        hooks: WebhookReceiver, session: aiohttp.ClientSession) -> None:
    """A Standard Webhooks signature made by the reference package verifies and is accepted."""
    body, headers = signed({"type": "message.created"}, "msg_abc")
    status, _ = await send(session, hooks.url_for("/crm"), body, headers)
    assert status == 200
    [got] = hooks.received
    assert (got.path, got.webhook_id, got.verified, got.error) == ("/crm", "msg_abc", True, None)
    assert got.json == {"type": "message.created"} and got.body == body
    assert got.headers["webhook-id"] == "msg_abc" and got.status == 200
    assert hooks.attempts == [got]


@pytest.mark.parametrize("spoil", [
    lambda body, headers: (body.replace(b"created", b"edited"), headers),
    lambda body, headers: (body, {**headers, "webhook-id": "msg_other"}),
    lambda body, headers: (body, {k: v for k, v in headers.items() if k != "webhook-signature"}),
    lambda body, headers: signed(json.loads(body), secret=OTHER_SECRET),
    lambda body, headers: signed(json.loads(body), at=datetime.now(UTC) - timedelta(hours=1)),
])
async def test_rejects_tampered_unsigned_stale_or_foreign_requests_with_401(
        hooks: WebhookReceiver, session: aiohttp.ClientSession, spoil: Any) -> None:
    """A tampered body or id, no signature, another secret or an old timestamp gets 401."""
    body, headers = spoil(*signed({"type": "message.created"}))
    status, _ = await send(session, hooks.url_for("/crm"), body, headers)
    assert status == 401
    assert hooks.received == []
    [attempt] = hooks.attempts
    assert (attempt.verified, attempt.status) == (False, 401)
    assert attempt.error


async def test_path_without_secret_accepts_anything_unverified(
        hooks: WebhookReceiver, session: aiohttp.ClientSession) -> None:
    """A path with no secret accepts every request and records verified=None."""
    status, _ = await send(session, hooks.url_for("slack"), b"not json", {})
    assert status == 200
    [got] = hooks.received
    assert (got.path, got.verified, got.json, got.webhook_id) == ("/slack", None, None, None)


async def test_status_fault_answers_code_and_retry_after_then_recovers(
        hooks: WebhookReceiver, session: aiohttp.ClientSession) -> None:
    """Fault.status on a path answers that code (with Retry-After) `times` times."""
    hooks.inject(Fault.status(429, retry_after=3), path="/crm", times=2)
    body, headers = signed({"n": 1})
    other, _ = await send(session, hooks.url_for("/other"), body, headers)
    first = await send(session, hooks.url_for("/crm"), body, headers)
    second = await send(session, hooks.url_for("/crm"), body, headers)
    third, _ = await send(session, hooks.url_for("/crm"), body, headers)
    assert (other, third) == (200, 200)
    assert first[0] == second[0] == 429 and first[1]["Retry-After"] == "3"
    assert [a.status for a in hooks.attempts] == [200, 429, 429, 200]
    assert len(hooks.received) == 2


async def test_slow_answer_past_client_timeout_is_late_not_received(
        hooks: WebhookReceiver, session: aiohttp.ClientSession) -> None:
    """A delayed answer the client gave up on is recorded in attempts and late only."""
    hooks.inject(Fault.delay(30))
    body, headers = signed({"n": 1})
    with pytest.raises(TimeoutError):
        await send(session, hooks.url_for("/crm"), body, headers, client_timeout=0.2)
    await hooks.wait_for(lambda r: len(r.late) == 1)
    assert hooks.received == []
    assert hooks.attempts == hooks.late
    assert hooks.late[0].verified is True


async def test_short_delay_within_client_timeout_is_received(
        hooks: WebhookReceiver, session: aiohttp.ClientSession) -> None:
    """A delay the client waits out ends in a normal, accepted answer."""
    hooks.inject(Fault.delay(0.05))
    body, headers = signed({"n": 1})
    status, _ = await send(session, hooks.url_for("/crm"), body, headers)
    assert status == 200
    assert len(hooks.received) == 1 and hooks.late == []


async def test_drop_fault_closes_the_connection_without_an_answer(
        hooks: WebhookReceiver, session: aiohttp.ClientSession) -> None:
    """Fault.DROP makes the client see a connection error; the attempt is still recorded."""
    hooks.inject(Fault.DROP, path="/crm")
    body, headers = signed({"n": 1}, "msg_dropped")
    with pytest.raises(aiohttp.ClientConnectionError):
        await send(session, hooks.url_for("/crm"), body, headers)
    [attempt] = hooks.attempts
    assert (attempt.webhook_id, attempt.status) == ("msg_dropped", None)
    assert hooks.received == []


async def test_default_status_holds_until_cleared(
        hooks: WebhookReceiver, session: aiohttp.ClientSession) -> None:
    """set_default_status answers every request with that code until set back to None."""
    hooks.set_default_status("/crm", 500)
    body, headers = signed({"n": 1})
    statuses = [(await send(session, hooks.url_for("/crm"), body, headers))[0]
                for _ in range(3)]
    hooks.set_default_status("/crm", None)
    statuses.append((await send(session, hooks.url_for("/crm"), body, headers))[0])
    assert statuses == [500, 500, 500, 200]
    assert len(hooks.received) == 1


async def test_duplicates_counts_webhook_ids_accepted_more_than_once(
        hooks: WebhookReceiver, session: aiohttp.ClientSession) -> None:
    """unique_ids and duplicates look at accepted requests only."""
    for msg_id in ("msg_a", "msg_b", "msg_a", "msg_a"):
        body, headers = signed({"n": 1}, msg_id)
        await send(session, hooks.url_for("/crm"), body, headers)
    hooks.set_default_status("/crm", 503)
    body, headers = signed({"n": 1}, "msg_b")
    await send(session, hooks.url_for("/crm"), body, headers)
    await hooks.wait_count(4)
    assert hooks.unique_ids() == {"msg_a", "msg_b"}
    assert hooks.duplicates() == {"msg_a": 3}


async def test_on_receive_sees_each_accepted_request_and_may_fail_safely(
        session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    """The listener hears every accepted request; its exceptions are logged, not answered."""
    heard: list[Received] = []

    def listener(received: Received) -> None:
        heard.append(received)
        raise RuntimeError("listener bug")

    async with WebhookReceiver(on_receive=listener) as hooks:
        with caplog.at_level(logging.ERROR, logger="notifier.testing.receiver"):
            status, _ = await send(session, hooks.url_for("/x"), b"{}", {})
    assert status == 200
    assert heard == hooks.received
    assert "listener failed" in caplog.text


async def test_wait_count_times_out_with_a_summary(hooks: WebhookReceiver) -> None:
    """wait_count raises TimeoutError describing what did arrive."""
    with pytest.raises(TimeoutError, match="0 received, 0 attempts"):
        await hooks.wait_count(1, timeout=0.05)


def test_misuse_is_reported_at_once() -> None:
    """A bad secret, an unsupported fault or a URL before start raise immediately."""
    with pytest.raises(SignatureError):
        WebhookReceiver({"/crm": "not-a-secret"})
    hooks = WebhookReceiver()
    with pytest.raises(ValueError, match="not supported"):
        hooks.inject(Fault.TRUNCATED)
    with pytest.raises(RuntimeError, match="async with"):
        hooks.url_for("/x")
