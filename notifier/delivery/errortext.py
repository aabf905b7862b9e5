"""Delivery error texts that hold no URL and no secret, whatever the receiver answers.

aiohttp's exception texts carry the request URL (``ClientResponseError``, ``InvalidURL``)
and normalise it on the way (``%2F`` becomes ``/``), so redaction that looks for the
configured text misses them. Texts are therefore built here from an exception's class
and the parts of it that cannot hold a URL (host, port, the OS's reason); remote text
(a reason phrase, the start of an error body) is then scrubbed of every spelling of
the webhook's URL, its path segments, query values, credentials, signing keys and
header values, its control characters escaped, and only then cut to length, so a
secret is never cut in half before it could be recognised (and one that the 8 KiB read
limit cut in half is dropped).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import aiohttp
import yarl

from notifier.config import Webhook

__all__ = ["MAX_ERROR_TEXT", "Scrubber", "answer_text", "client_error_text"]

#: The longest error text stored, logged or shown (characters, after scrubbing).
MAX_ERROR_TEXT = 300
#: Shorter parts of a URL are ordinary words ("hooks", "v1"), not tokens.
_MIN_TOKEN = 6
_SPACES = re.compile(r"\s+")


def _url_spellings(url: str) -> set[str]:
    """``url`` and its token-bearing parts, raw and percent-decoded, as clients print them."""
    parts = urlsplit(url)
    found = {url, unquote(url), parts.path, unquote(parts.path)}
    try:
        parsed = yarl.URL(url)
        found |= {str(parsed), parsed.human_repr(), parsed.raw_path, parsed.path}
    except ValueError:
        pass  # the client cannot send to it either; the raw spellings remain
    for path in (parts.path, unquote(parts.path)):
        found.update(path.split("/"))
    found.update(unquote(segment) for segment in parts.path.split("/"))
    for _, value in parse_qsl(parts.query, keep_blank_values=False):
        found |= {value, unquote(value)}
    found |= {p for p in (parts.username, parts.password) if p}
    return {s for s in found if len(s.strip("/")) >= _MIN_TOKEN}


def _webhook_secrets(webhook: Webhook) -> dict[str, str]:
    """Every text of ``webhook`` that must not appear, mapped to the name shown instead."""
    where = f"webhooks.{webhook.name}"
    found = dict.fromkeys(_url_spellings(webhook.url), f"{where}.url")
    for key in webhook.secrets:
        encoded = base64.b64encode(key).decode()
        found.update(dict.fromkeys((encoded, encoded.rstrip("=")), f"{where}.secret"))
    for header, value in webhook.headers.items():
        for part in (value, *value.split()[1:]):
            if len(part) >= _MIN_TOKEN:
                found[part] = f"{where}.headers.{header}"
    return found


class Scrubber:
    """Replaces the webhooks' URLs, tokens and secrets in a text by their names."""

    def __init__(self, webhooks: Iterable[Webhook]) -> None:
        names: dict[str, str] = {}
        for webhook in webhooks:
            names.update(_webhook_secrets(webhook))
        self._names = {value.lower(): name for value, name in names.items()}
        # longest first, so a URL is replaced whole before its path is
        ordered = sorted(names, key=len, reverse=True)
        self._pattern = (re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)
                         if ordered else None)

    def body_text(self, body: bytes, *, cut: bool) -> str:
        """The start of an answer's body as text; when the body was ``cut`` short, a
        secret that the cut split in two is dropped, as scrubbing could not see it."""
        text = _SPACES.sub(" ", body.decode("utf-8", "replace")).strip()
        if cut:
            low = text.lower()
            partial = max((k for value in self._names for k in range(1, len(value))
                           if low.endswith(value[:k])), default=0)
            text = text[:len(text) - partial] + "…"
        return text

    def __call__(self, text: str) -> str:
        """``text`` scrubbed, control characters escaped, cut to MAX_ERROR_TEXT."""
        if self._pattern is not None:
            text = self._pattern.sub(lambda m: f"[{self._names[m[0].lower()]}]", text)
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
        return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT - 1] + "…"


def answer_text(status: int, reason: str, body: str) -> str:
    """``HTTP 500 Internal Server Error: <start of the body>``; the caller scrubs, then cuts."""
    text = f"HTTP {status} {reason}".strip()
    return f"{text}: {body}" if body else text


def _connector_text(exc: aiohttp.ClientConnectorError) -> str:
    reason = exc.os_error.strerror or type(exc.os_error).__name__
    return f"cannot connect to {exc.host}:{exc.port}: {reason}"


def _ssl_text(exc: aiohttp.ClientSSLError) -> str:
    error = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None)
    reason = (getattr(error, "verify_message", None) or getattr(error, "reason", None)
              or type(error).__name__)
    return f"TLS failed: {reason}"


#: Each aiohttp error's text, from its parts that hold no URL; the first match applies.
_TEXTS: tuple[tuple[type[BaseException], Callable[[Any], str]], ...] = (
    (aiohttp.ClientSSLError, _ssl_text),
    (aiohttp.ClientConnectorDNSError, lambda e: f"cannot resolve {e.host}"),
    (aiohttp.ClientConnectorError, _connector_text),
    (aiohttp.InvalidURL, lambda e: "the url cannot be sent by the HTTP client"),
    (aiohttp.ServerDisconnectedError,
     lambda e: "the server closed the connection without an answer"),
    (aiohttp.ServerTimeoutError, lambda e: "timed out waiting for the answer"),
    (aiohttp.ClientPayloadError, lambda e: "the answer's body is malformed"),
    (aiohttp.ClientResponseError, lambda e: f"malformed answer: {e.message}"),
    (aiohttp.ClientOSError, lambda e: f"connection failed: {e.strerror or type(e).__name__}"),
)


def client_error_text(exc: aiohttp.ClientError) -> str:
    """What went wrong, in words that never include the request's URL."""
    for kind, text in _TEXTS:
        if isinstance(exc, kind):
            return text(exc)
    return type(exc).__name__
