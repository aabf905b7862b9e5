"""Delivery error texts that hold no URL and no secret, whatever the receiver answers.

aiohttp's exception texts carry the request URL, so the words for a failed request are
built from the parts of the exception that cannot hold one (notifier.util.http_errors,
the one mapping of aiohttp's exceptions to ours). Remote text (a reason phrase, the
start of an error body) is then scrubbed of every spelling of the webhook's URL, its
path segments, query values, credentials, signing keys and header values, its control
characters escaped, and only then cut to length, so a secret is never cut in half
before it could be recognised (and one that the 8 KiB read limit cut in half is
dropped).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from notifier.config import Webhook
from notifier.util.redaction import MIN_SECRET, SecretMatcher, webhook_secrets
from notifier.util.shown import ELLIPSIS, shown

__all__ = ["MAX_ERROR_TEXT", "Scrubber", "answer_text"]

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
