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

import re
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp

from notifier.config import Webhook
from notifier.util.redaction import MIN_SECRET, SecretMatcher, webhook_secrets
from notifier.util.shown import ELLIPSIS, shown

__all__ = ["MAX_ERROR_TEXT", "Scrubber", "answer_text", "client_error_text"]

#: The longest error text stored, logged or shown (characters, after scrubbing).
MAX_ERROR_TEXT = 300
#: Shorter path segments are ordinary words ("hooks", "v1"), not tokens; an error text is
#: about this webhook's request, so a segment this long found there is taken for its echo.
_MIN_SEGMENT = 6
_SPACES = re.compile(r"\s+")


class Scrubber:
    """Replaces the webhooks' URLs, tokens and secrets in a text by their names, in any
    spelling and by their long fragments (notifier.util.redaction)."""

    def __init__(self, webhooks: Iterable[Webhook]) -> None:
        names: dict[str, str] = {}
        for hook in webhooks:
            names.update(webhook_secrets(hook.name, hook.url, hook.secrets, hook.headers,
                                         segment=_MIN_SEGMENT))
        self._matcher = SecretMatcher(names, MIN_SECRET)

    def body_text(self, body: bytes, *, cut: bool) -> str:
        """The start of an answer's body as text; when the body was ``cut`` short, a
        secret that the cut split in two is dropped, as scrubbing could not see it."""
        text = _SPACES.sub(" ", body.decode("utf-8", "replace")).strip()
        if cut:
            low = text.lower()
            partial = max((k for value in self._matcher.forms for k in range(1, len(value))
                           if low.endswith(value[:k])), default=0)
            text = text[:len(text) - partial] + "…"
        return text

    def __call__(self, text: str) -> str:
        """``text`` scrubbed, control characters escaped, cut to MAX_ERROR_TEXT."""
        return shown(self._matcher.redact(text), MAX_ERROR_TEXT - len(ELLIPSIS))


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
