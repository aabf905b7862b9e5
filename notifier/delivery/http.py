"""One webhook's HTTP client: format, sign, POST once, classify the answer.

Targets are checked against the SSRF guard twice: literal addresses before connecting,
and every DNS answer inside the resolver (so a name that resolves to 127.0.0.1 is
refused too). Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from notifier import __version__
from notifier.config import Webhook
from notifier.delivery.formats import formatter_for
from notifier.delivery.signing import signature_headers
from notifier.errors import DeliveryPermanentError, DeliveryTransientError
from notifier.events import Delivery
from notifier.netguard import is_private_address, private_literal
from notifier.retrying import TRANSIENT_STATUSES, parse_retry_after

__all__ = ["GuardedResolver", "PrivateAddressRefused", "WebhookClient"]



class PrivateAddressRefused(OSError):
    """A webhook host resolved to an address that allow_private_urls does not permit."""


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, refusing private answers."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if is_private_address(ipaddress.ip_address(result["host"])):
                raise PrivateAddressRefused(
                    f"{host} resolves to private address {result['host']}; "
                    "set allow_private_urls: true to allow it")
        return results

    async def close(self) -> None:
        await self._inner.close()


class WebhookClient:
    """Sends deliveries to one webhook over its own connection pool."""

    def __init__(self, webhook: Webhook) -> None:
        self._webhook = webhook
        self._format = formatter_for(webhook)
        self._session: aiohttp.ClientSession | None = None
        host = urlsplit(webhook.url).hostname or ""
        self._private_target = (not webhook.allow_private_urls
                                and private_literal(host) is not None)
        self._fixed_headers = {"user-agent": f"roomlio-notifier/{__version__}",
                               **webhook.headers}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            w = self._webhook
            resolver = None if w.allow_private_urls else GuardedResolver()
            connector = aiohttp.TCPConnector(limit=w.max_in_flight, resolver=resolver)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=w.timeout))
        return self._session

    def _headers(self, delivery: Delivery, body: bytes, content_type: str,
                 signed: bool) -> dict[str, str]:
        headers = {"content-type": content_type, **self._fixed_headers}
        if signed and self._webhook.secrets:
            headers.update(signature_headers(self._webhook.secrets, delivery.id,
                                             int(time.time()), body))
        else:
            headers["webhook-id"] = delivery.id
        return headers

    async def post(self, delivery: Delivery) -> int:
        """POST once; return the 2xx status or raise a DeliveryError subclass."""
        w = self._webhook
        if self._private_target:
            raise DeliveryPermanentError(
                f"webhook {w.name}: target is a private address; "
                "set allow_private_urls: true to allow it")
        payload = self._format(delivery)
        headers = self._headers(delivery, payload.body, payload.content_type, payload.signed)
        try:
            async with self._open().post(w.url, data=payload.body, headers=headers,
                                         allow_redirects=False) as resp:
                await resp.read()
                return _classify(w.name, resp)
        except TimeoutError:
            raise DeliveryTransientError(f"no answer within {w.timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, PrivateAddressRefused):
                raise DeliveryPermanentError(str(exc.os_error)) from None
            raise DeliveryTransientError(f"cannot connect: {exc.os_error}") from None
        except aiohttp.ClientError as exc:
            raise DeliveryTransientError(f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:
            # aiohttp refuses a request it cannot build (say, credentials in the URL and an
            # Authorization header): no retry will change that. The message names no URL.
            raise DeliveryPermanentError(f"webhook {w.name}: the request cannot be built: "
                                         f"{type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _classify(name: str, resp: aiohttp.ClientResponse) -> int:
    status = resp.status
    if 200 <= status < 300:
        return status
    reason: Any = resp.reason or ""
    text = f"HTTP {status} {reason}".strip()
    if status in TRANSIENT_STATUSES:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        raise DeliveryTransientError(text, status=status, retry_after=retry_after)
    if 300 <= status < 400:
        raise DeliveryPermanentError(f"{text}: redirects are not followed; "
                                     f"update webhooks.{name}.url", status=status)
    raise DeliveryPermanentError(text, status=status)
