"""One webhook's HTTP client: format, sign, POST once, classify the answer.

The sender posts through the ``Transport`` protocol (httpx's ``BaseTransport`` is the
model), built by ``open_transport`` as the webhook's ``http_client`` says: ``WebhookClient``
here, on aiohttp (``auto``, the default), or notifier.delivery.transport_reqwest's, on
pyreqwest (``http_client: pyreqwest``; the ``pyreqwest`` extra installs it). Both keep
the guarantees below; the delivery tests run against each.

Targets are checked against the SSRF guard three times: the host as aiohttp reads it
(after IDNA folding, so ``１２７.０.０.１`` is 127.0.0.1) before anything is sent, every DNS
answer inside the resolver, and the address of every connection before its socket
connects (the socket factory sees it, literal IPs included; both in
notifier.delivery.guards). Redirects are never followed. Only the first
MAX_ANSWER_BYTES of an answer are read; a longer body's connection is closed, never
drained or buffered. Error texts name no URL (see
notifier.util.http_errors and notifier.delivery.errortext).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp

from notifier import __version__
from notifier.config import Webhook
from notifier.delivery.deadlines import Deadlines
from notifier.delivery.errortext import Scrubber, answer_text
from notifier.delivery.formats import FORMATS
from notifier.delivery.guards import ALLOW_PRIVATE, GuardedResolver, guarded_socket
from notifier.delivery.inline_request import InlineBodyRequest
from notifier.delivery.lean_post import LeanPost
from notifier.errors import (
    DeliveryError,
    DeliveryPermanentError,
    DeliveryTransientError,
    PrivateAddressRefused,
)
from notifier.events import Delivery
from notifier.signing import Signer
from notifier.util import tracing
from notifier.util.backoff import TRANSIENT_STATUSES, parse_retry_after
from notifier.util.http_errors import ErrorMap, Failure, Mapped
from notifier.util.netguard import private_target

__all__ = ["ALLOW_PRIVATE", "MAX_ANSWER_BYTES", "GuardedResolver", "SigningTransport",
           "Transport", "TransportFactory", "WebhookClient", "classify_answer",
           "guarded_socket", "open_transport"]

#: The most of a webhook's answer that is read: enough for the error text.
MAX_ANSWER_BYTES = 8 * 1024
_ALLOW = ALLOW_PRIVATE


class Transport(Protocol):
    """What the sender posts one webhook's deliveries through."""

    @property
    def scrub(self) -> Callable[[str], str]:
        """Removes the webhook's URL, tokens and secrets from a text (every error text)."""
        ...

    async def post(self, delivery: Delivery) -> int:
        """POST once; return the 2xx status or raise a DeliveryError subclass (its text
        already scrubbed)."""
        ...

    async def close(self) -> None:
        """Release the connections; a later ``post`` may open new ones."""
        ...


#: Builds a webhook's transport (``WebhookClient`` by default); called again with the
#: new settings when a reload changes the webhook.
TransportFactory = Callable[[Webhook], Transport]


def open_transport(webhook: Webhook) -> Transport:
    """The transport ``webhook.http_client`` names (the sender's default factory): ``auto``
    is aiohttp, measured as fast or faster than pyreqwest with less CPU (bench/RESULTS.md,
    "eighth pass"). The config refuses ``pyreqwest`` when it is not installed."""
    if webhook.http_client == "pyreqwest":
        try:
            from notifier.delivery.transport_reqwest import ReqwestTransport
        except ImportError:
            return WebhookClient(webhook)
        return ReqwestTransport(webhook)
    return WebhookClient(webhook)


class SigningTransport:
    """What every transport shares: format, sign, refuse a private literal target, scrub
    error texts. A subclass sends (``_send``) and words its HTTP client's failures."""

    def __init__(self, webhook: Webhook) -> None:
        self._webhook = webhook
        form = FORMATS[webhook.format]
        self._body = form.plain(webhook)
        self._content_type, self._signed = webhook.content_type, form.signed
        self._format = None if self._body is not None else form.formatter(webhook)
        self._private_target = (not webhook.allow_private_urls
                                and private_target(webhook.url) is not None)
        self._fixed_headers = {"user-agent": f"roomlio-notifier/{__version__}",
                               **webhook.headers}
        self._signer = Signer(webhook.secrets) if webhook.secrets else None
        self.scrub = Scrubber([webhook])
        """Removes this webhook's URL, tokens and secrets from a text (every error text)."""

    def _headers(self, delivery: Delivery, body: bytes, content_type: str,
                 signed: bool) -> dict[str, str]:
        if signed and self._signer is not None:
            now = int(time.time())
            headers = {"content-type": content_type, **self._fixed_headers,
                       "webhook-id": delivery.id, "webhook-timestamp": str(now),
                       "webhook-signature": self._signer.signature(delivery.id, now, body)}
        else:
            headers = {"content-type": content_type, **self._fixed_headers,
                       "webhook-id": delivery.id}
        if trace := tracing.headers():  # W3C traceparent while tracing: never signed
            headers.update(trace)
        return headers

    async def post(self, delivery: Delivery) -> int:
        """POST once; return the 2xx status or raise a DeliveryError subclass.

        The error's text is scrubbed of this webhook's URL and secrets in every spelling.
        """
        try:
            if self._private_target:
                raise DeliveryPermanentError(f"webhook {self._webhook.name}: target is a "
                                             f"private address; {_ALLOW}")
            if self._body is not None:  # the webhook's content type and signing: no Payload
                body = self._body(delivery)
                headers = self._headers(delivery, body, self._content_type, self._signed)
            else:
                assert self._format is not None
                payload = self._format(delivery)
                body = payload.body
                headers = self._headers(delivery, body, payload.content_type, payload.signed)
                headers.update(payload.headers)  # the format's own (ce-*): not the webhook's
            return await self._send(body, headers)
        except DeliveryError as exc:
            raise type(exc)(self.scrub(str(exc)), status=exc.status,
                            retry_after=exc.retry_after) from None

    async def _send(self, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body`` once; the 2xx status, or a DeliveryError (scrubbed by ``post``)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release the connections; a later ``post`` may open new ones."""


class WebhookClient(SigningTransport):
    """Sends deliveries to one webhook over its own aiohttp connection pool (a Transport):
    a plain POST with aiohttp's connector, request and response directly
    (notifier.delivery.lean_post), anything else by ``ClientSession._request``."""

    def __init__(self, webhook: Webhook) -> None:
        super().__init__(webhook)
        self._session: aiohttp.ClientSession | None = None
        self._post: LeanPost | None = None
        self._errors = ErrorMap(DeliveryTransientError, DeliveryPermanentError, self._word)
        self._deadlines = Deadlines(webhook.timeout)

    def _open(self) -> LeanPost:
        """What POSTs to the webhook, the session opened first if need be."""
        if self._post is None:
            w = self._webhook
            guarded = not w.allow_private_urls
            connector = aiohttp.TCPConnector(
                limit=w.max_in_flight, resolver=GuardedResolver() if guarded else None,
                socket_factory=guarded_socket if guarded else None)
            # no cookie jar: a receiver's Set-Cookie never rides on the next delivery
            # (as with pyreqwest, which keeps none); no aiohttp timeout: ``_send`` keeps
            # the webhook's (notifier.delivery.deadlines)
            self._session = session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(), request_class=InlineBodyRequest)
            # a plain POST without ``_request``'s orchestration (none of it used here)
            self._post = LeanPost(session, w.url)
        return self._post

    async def _send(self, body: bytes, headers: dict[str, str]) -> int:
        w = self._webhook
        task: asyncio.Task[object] = asyncio.current_task()  # type: ignore[assignment]
        deadlines = self._deadlines
        deadlines.start(task)  # the whole request, from connecting to its answer's end
        try:
            with self._errors:
                resp = await self._open()(body, headers)
                status = resp.status
                if 200 <= status < 300 and resp.content.is_eof():
                    # all of it came: aiohttp released the response and put its
                    # connection back in the pool at its end, so there is nothing to
                    # leave (no ``async with``); a 2xx's text is never used: not read
                    return status
                async with resp:  # a body still coming is read, to keep its connection
                    prefix, cut = await _read_prefix(resp)
                    return classify_answer(w.name, status, str(resp.reason or ""),
                                           resp.headers.get("Retry-After"),
                                           self.scrub.body_text(prefix, cut=cut))
        except asyncio.CancelledError:
            if deadlines.timed_out(task):
                raise DeliveryTransientError(self._timed_out()) from None
            raise
        finally:
            deadlines.end(task)

    def _timed_out(self) -> str:
        return f"no answer within {self._webhook.timeout:g}s"

    def _word(self, mapped: Mapped) -> str:
        """The error text of a failed request (notifier.util.http_errors): no URL in it."""
        w = self._webhook
        match mapped.failure:
            case Failure.TIMEOUT:
                return self._timed_out()
            case Failure.REFUSED:
                assert isinstance(mapped.error, aiohttp.ClientConnectorError)
                return f"webhook {w.name}: {_refusal(mapped.error.os_error)}"
            case Failure.BAD_URL:
                return f"webhook {w.name}: {mapped.reason}; check webhooks.{w.name}.url"
            case Failure.UNSENDABLE:
                return f"webhook {w.name}: the request cannot be built: {mapped.reason}"
        return mapped.reason

    async def close(self) -> None:
        """Close the connection pool; a later ``post`` opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = self._post = None


def _refusal(error: OSError) -> str:
    if isinstance(error, PrivateAddressRefused):
        return str(error)
    return f"the target's addresses are private; {_ALLOW}"


async def _read_prefix(resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """At most MAX_ANSWER_BYTES of the body, and whether there was more. A longer body is
    not drained: its connection is closed, so a receiver cannot make the notifier read or
    hold more than that."""
    chunks: list[bytes] = []
    size = 0
    while size < MAX_ANSWER_BYTES:
        chunk = await resp.content.read(MAX_ANSWER_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    cut = not resp.content.at_eof()
    if cut:
        resp.close()
    return b"".join(chunks), cut


def classify_answer(name: str, status: int, reason: str, retry_after: str | None,
                    body: str) -> int:
    """``status`` if it is a 2xx; else the DeliveryError the answer stands for (a 3xx is
    permanent: redirects are not followed), ``body`` being its scrubbed start."""
    if 200 <= status < 300:
        return status
    text = answer_text(status, reason, body)
    if status in TRANSIENT_STATUSES:
        raise DeliveryTransientError(text, status=status,
                                     retry_after=parse_retry_after(retry_after))
    if 300 <= status < 400:
        raise DeliveryPermanentError(f"{text} (redirects are not followed; "
                                     f"update webhooks.{name}.url)", status=status)
    raise DeliveryPermanentError(text, status=status)
