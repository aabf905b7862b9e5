"""Webhook delivery over pyreqwest (Rust's reqwest): the faster Transport (issue 16).

pyreqwest has no resolver or socket hook, so the SSRF guard is kept by pinning: this
transport resolves the webhook's host itself (through ``transport.GuardedResolver``,
which refuses private answers), checks the address it picked once more, and builds
the client with ``resolve(host, address)``: reqwest then connects to that checked
address and to nothing else, so a second DNS answer (rebinding) is never asked for. The
answer is kept ``DNS_TTL`` seconds, as aiohttp's connector caches it; a changed answer
builds a new client. A host that reqwest reads as an IP literal (its URL parser folds
``１２７.０.０.１`` and ``0x7f.1`` as yarl does) is checked as that address.

Everything else is WebhookClient's contract: a total timeout per attempt, no proxy from
the environment, redirects answered as permanent failures, no decompression (nothing
sent but ``Accept: */*`` besides our headers), at most MAX_ANSWER_BYTES of an answer
read and a longer one's connection dropped undrained, TLS verified against the system's
trust store, failures worded without a URL.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ipaddress
import math
import socket
import time
from datetime import timedelta
from http import HTTPStatus

from pyreqwest import exceptions as rq
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.http import Url
from pyreqwest.response import Response

from notifier.config import Webhook
from notifier.delivery import transport as base
from notifier.errors import (
    DeliveryError,
    DeliveryPermanentError,
    DeliveryTransientError,
    PrivateAddressRefused,
)
from notifier.util.netguard import is_private_address

__all__ = ["DNS_TTL", "ReqwestTransport"]

#: Seconds a checked DNS answer is used before the host is resolved again (aiohttp's
#: connector caches its answers as long).
DNS_TTL = 10.0
#: How long the interpreter's exit waits after the last client was closed. pyreqwest
#: 0.15's runtime threads finish dropping a closed client's connections in the
#: background; if the interpreter is finalizing meanwhile, CPython aborts the process
#: ("Fatal Python error: PyGILState_Release", SIGABRT: 5 of 40 short scripts here,
#: none with this wait).
EXIT_SETTLE = 0.05
_last_close = [-math.inf]
#: Words in reqwest's causes that mark a failed TLS handshake or certificate check.
_TLS_WORDS = ("certificate", "tls", "handshake", "corrupt message", "alert")


class ReqwestTransport(base.SigningTransport):
    """Sends deliveries to one webhook over a pyreqwest client pinned to a checked address."""

    def __init__(self, webhook: Webhook) -> None:
        super().__init__(webhook)
        self._client: Client | None = None
        self._pinned: str | None = None
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()
        self._retired: list[tuple[float, Client]] = []
        self._url: Url | None = None
        with contextlib.suppress(ValueError):  # said at the first post, as aiohttp does
            self._url = Url(webhook.url)

    async def _send(self, body: bytes, headers: dict[str, str]) -> int:
        w = self._webhook
        client, url = self._client, self._url
        if client is None or url is None or time.monotonic() >= self._fresh_until:
            client, url = await self._current()  # built, or its DNS answer is stale
        try:
            request = (client.post(url).headers(headers).body_bytes(body)
                       .streamed_read_buffer_limit(base.MAX_ANSWER_BYTES))
            async with request.build_streamed() as resp:
                status = resp.status
                if 200 <= status < 300:
                    # entering waited for the body, into pyreqwest's read buffer (held to
                    # MAX_ANSWER_BYTES, not its 64 KiB default); a 2xx's text is unused, so
                    # it is not read: the connection is reused when all of it came, else
                    # dropped (not drained) on leaving
                    return status
                prefix, cut = await _read_prefix(resp)
                return base.classify_answer(w.name, status, _phrase(status),
                                            resp.get_header("retry-after"),
                                            self.scrub.body_text(prefix, cut=cut))
        except (rq.PyreqwestError, ValueError) as exc:  # ValueError: a header it refuses
            raise self._failure(exc) from None

    async def _current(self) -> tuple[Client, Url]:
        """The client for now, built (again) when the host's checked address changed."""
        url = self._unsendable_check()
        if self._client is None or time.monotonic() >= self._fresh_until:
            async with self._lock:
                if self._client is None or time.monotonic() >= self._fresh_until:
                    address = await self._checked_address(url)
                    if self._client is None or address != self._pinned:
                        await self._retire(self._client)
                        self._client = self._build(url, address)
                        self._pinned = address
                    ttl = DNS_TTL if address is not None else math.inf
                    self._fresh_until = time.monotonic() + ttl
        assert self._client is not None
        return self._client, url

    async def _retire(self, client: Client | None) -> None:
        """Keep a replaced client until its requests in flight are over (a timeout from
        now), closing those replaced longer ago: a host whose answers keep changing
        holds a few clients at most, not one per change."""
        now = time.monotonic()
        while self._retired and self._retired[0][0] <= now:
            await self._retired.pop(0)[1].close()
        if client is not None:
            self._retired.append((now + self._webhook.timeout + 1, client))

    def _unsendable_check(self) -> Url:
        w = self._webhook
        if self._url is None:
            raise DeliveryPermanentError(f"webhook {w.name}: the url cannot be sent by the "
                                         f"HTTP client; check webhooks.{w.name}.url")
        if (self._url.username or self._url.password) and any(
                k.lower() == "authorization" for k in w.headers):
            # aiohttp refuses the pair too; which one would win is not for us to guess
            raise DeliveryPermanentError(
                f"webhook {w.name}: the request cannot be built: credentials in the url "
                "and an Authorization header")
        return self._url

    async def _checked_address(self, url: Url) -> str | None:
        """The public address to pin the host to; None for no pin (an IP literal, checked
        here, or allow_private_urls)."""
        if self._webhook.allow_private_urls:
            return None
        host = url.host_str or ""
        if url.domain is None:  # an IP literal as reqwest reads it: no DNS involved
            _refuse_private(host.strip("[]"))
            return None
        port = url.port_or_known_default or 0
        resolver = base.GuardedResolver()
        try:
            answers = await resolver.resolve(host, port, socket.AF_UNSPEC)
        except PrivateAddressRefused as exc:
            raise PrivateAddressRefused(f"webhook {self._webhook.name}: {exc}") from None
        except OSError:
            raise DeliveryTransientError(f"cannot resolve {host}") from None
        finally:
            await resolver.close()
        addresses = [a["host"] for a in answers]
        address = self._pinned if self._pinned in addresses else addresses[0]
        _refuse_private(address)  # what the socket will connect to, checked once more
        return address

    def _build(self, url: Url, address: str | None) -> Client:
        w = self._webhook
        builder = (ClientBuilder().max_connections(w.max_in_flight)
                   .timeout(timedelta(seconds=w.timeout)).follow_redirects(False)
                   .no_proxy().gzip(False).brotli(False).zstd(False).deflate(False)
                   .user_agent(self._fixed_headers["user-agent"]))
        if address is not None:
            builder = builder.resolve(url.host_str or "", address,
                                      url.port_or_known_default or 0)
        return builder.build()

    def _failure(self, exc: Exception) -> DeliveryError:
        """The DeliveryError for one of pyreqwest's exceptions, worded without a URL."""
        w = self._webhook
        if isinstance(exc, TimeoutError):  # reqwest calls a late answer a connect timeout
            return DeliveryTransientError(f"no answer within {w.timeout:g}s")
        if isinstance(exc, ValueError):  # no retry changes the request; its text may hold
            # a header's value, so only the kind is told (as for aiohttp's)
            return DeliveryPermanentError(
                f"webhook {w.name}: the request cannot be built: {type(exc).__name__}")
        causes = _causes(exc)
        reason = causes[-1] if causes else type(exc).__name__
        if isinstance(exc, rq.ConnectError):
            if any(word in c.lower() for c in causes for word in _TLS_WORDS):
                return DeliveryTransientError(f"TLS failed: {reason}")
            url = self._url
            where = f"{url.host_str}:{url.port_or_known_default}" if url is not None else "?"
            return DeliveryTransientError(f"cannot connect to {where}: {reason}")
        if isinstance(exc, rq.DecodeError):  # hyper's parse errors: status line, headers
            return DeliveryTransientError(f"malformed answer: {reason}")
        return DeliveryTransientError(f"connection failed: {reason}")

    async def close(self) -> None:
        """Close the clients; a later ``post`` builds a new one."""
        clients, self._retired = [*(c for _, c in self._retired), self._client], []
        self._client, self._pinned, self._fresh_until = None, None, 0.0
        for client in clients:
            if client is not None:
                await client.close()
                _last_close[0] = time.monotonic()


@atexit.register
def _settle() -> None:
    """At exit, let the runtime finish with clients closed just before (EXIT_SETTLE)."""
    wait = _last_close[0] + EXIT_SETTLE - time.monotonic()
    if wait > 0:
        time.sleep(wait)


def _refuse_private(host: str) -> None:
    peer = ipaddress.ip_address(host.split("%", 1)[0])
    if is_private_address(peer):
        raise PrivateAddressRefused(f"connection to private address {peer} refused; "
                                    f"{base.ALLOW_PRIVATE}")


def _causes(exc: Exception) -> list[str]:
    """reqwest's chain of causes, leaving out any that quote the URL."""
    details = getattr(exc, "details", None) or {}
    return [str(c.get("message", "")) for c in details.get("causes") or ()
            if "://" not in str(c.get("message", ""))]


def _phrase(status: int) -> str:
    # reqwest does not keep the reason phrase the receiver sent; the standard one stands in
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


async def _read_prefix(resp: Response) -> tuple[bytes, bool]:
    """At most MAX_ANSWER_BYTES of the body, and whether there may be more. A longer body
    is not drained: leaving the streamed response drops its connection."""
    reader = resp.body_reader
    chunks: list[bytes] = []
    size = 0
    while size < base.MAX_ANSWER_BYTES:
        chunk = await reader.read(base.MAX_ANSWER_BYTES - size)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(bytes(chunk))
        size += len(chunk)
    declared = resp.get_header("content-length")
    # reading on to learn whether more follows could wait for a stalled sender
    cut = not (declared is not None and declared.isdigit() and int(declared) <= size)
    return b"".join(chunks), cut
