"""The Roomlio RPC client: one request, decoded and classified (transient or permanent).

Every answer is checked before anything downstream sees it: a page that is truncated or
malformed as a whole raises RoomlioTransientError, so the tailer retries it and never
skips or advances past it. A malformed message within a well-formed page is not the
page's fault: it comes back as a Defect, for the tailer to quarantine, and the rest of
the page is processed (one bad message must cost that message, not its room; the page's
validation is ``notifier.polling.pages``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from notifier import __version__
from notifier.config import Room, RoomlioSettings
from notifier.errors import (
    RoomlioAnswerTooLarge,
    RoomlioAuthError,
    RoomlioCursorError,
    RoomlioError,
    RoomlioNotFoundError,
    RoomlioPermanentError,
    RoomlioTransientError,
)
from notifier.polling.pages import Defect, Page, check_message, message_id, parse_page
from notifier.polling.throttle import KeyThrottle
from notifier.util.backoff import (
    TRANSIENT_STATUSES,
    Retry,
    RetryAfterWait,
    parse_retry_after,
)
from notifier.util.http_errors import ErrorMap, Failure, Mapped
from notifier.util.json import loads, loads_utf8
from notifier.util.redaction import Redactor
from notifier.util.shown import shown

__all__ = ["MAX_IDLE_PAGES", "Defect", "Page", "RoomlioClient", "check_message",
           "decode_answer", "message_id", "parse_page"]

#: Pages in a row that bring nothing new after which a one-off reading of history
#: (``notifier replay``, ``backtest``) stops: a Roomlio handing out fresh cursors to empty
#: pages for ever would otherwise keep it reading for ever.
MAX_IDLE_PAGES = 10


class RoomlioClient:
    """Calls Roomlio RPC methods; retries transient failures with tenacity. Every request
    waits for its turn from ``throttle``, the API key's (one per process: a 429 pauses
    and slows every room; notifier.polling.throttle)."""

    def __init__(self, settings: RoomlioSettings, session: aiohttp.ClientSession, *,
                 instance: str = "local", attempts: int = 4,
                 on_error: Callable[[RoomlioError], None] | None = None,
                 secrets: Mapping[str, str] | None = None,
                 throttle: KeyThrottle | None = None) -> None:
        self._settings = settings
        self.throttle = throttle or KeyThrottle(settings.max_requests_per_second)
        self._redactor = Redactor(
            secrets if secrets is not None else {settings.api_key: "roomlio.api_key"})
        """Cleans remote error text of the key (and the config's other secrets) before it is
        cut to length: a cut through a secret would leave half of it unrecognisable."""
        self._on_error = on_error
        """Told of every failed call, retried or not (metrics count API errors by code)."""
        self._session = session
        self._instance = instance
        self._attempts = attempts
        self._url = settings.base_url.rstrip("/")
        self._retry: Retry[Page] = Retry(RoomlioTransientError,
                                         wait=RetryAfterWait(base=0.5, cap=30.0),
                                         attempts=attempts)
        """RoomHistory's retry policy, built once (each call keeps its own tenacity state)."""

    async def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """POST ``params`` to ``{base_url}/{method}`` once; decode or raise a RoomlioError."""
        headers = {
            "Authorization": f"Bearer {self._settings.api_key}",
            "User-Agent": f"roomlio-notifier/{__version__}",
            "x-notifier-instance": self._instance,
        }
        timeout = aiohttp.ClientTimeout(total=self._settings.request_timeout)
        sent_at = await self.throttle.acquire()
        with ErrorMap(RoomlioTransientError, RoomlioPermanentError,
                      functools.partial(self._word, method)):
            async with self._session.post(f"{self._url}/{method}", json=dict(params),
                                          headers=headers, timeout=timeout,
                                          allow_redirects=False) as resp:
                raw = await self._read_limited(resp)
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        self.throttle.answered(status, retry_after, sent_at)
        if status != 200:
            raise _status_error(method, status, _error_detail(raw, self._redactor.redact),
                                retry_after)
        try:
            return decode_answer(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise RoomlioTransientError(f"{method}: answer is not valid JSON ({exc})") from None

    def _word(self, method: str, mapped: Mapped) -> str:
        """The error text of a failed request (notifier.util.http_errors); the client's own
        text is redacted, then escaped and cut."""
        if mapped.failure is Failure.TIMEOUT:
            return f"{method}: no answer within {self._settings.request_timeout:g}s"
        text = shown(self._redactor.redact(str(mapped.error)), 300)
        return f"{method}: {type(mapped.error).__name__}: {text}"

    async def _read_limited(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self._settings.max_response_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise RoomlioAnswerTooLarge(
                f"answer of {resp.content_length} bytes exceeds the {limit}-byte limit "
                "(roomlio.max_response_bytes)")
        # read(n) returns what has arrived so far (up to n), not n: loop until the end.
        body = bytearray()
        while chunk := await resp.content.read(limit + 1 - len(body)):
            body += chunk
            if len(body) > limit:
                raise RoomlioAnswerTooLarge(
                    f"answer exceeds the {limit}-byte limit (roomlio.max_response_bytes)")
        return bytes(body)

    async def room_history(self, room: Room, *, limit: int, start_cursor: str | None = None,
                           since: str | None = None) -> Page:
        """One RoomHistory page, retried on transient errors; raises the last error."""
        params: dict[str, Any] = {**room.params(), "limit": limit}
        if start_cursor:
            params["startCursor"] = start_cursor
        elif since:
            params["since"] = since
        return await self._retry.call(functools.partial(self._page, params))

    async def _page(self, params: Mapping[str, Any], _attempt: int) -> Page:
        """One attempt at a RoomHistory page; every failure is told to ``on_error``."""
        try:
            return parse_page(await self.call("RoomHistory", params))
        except RoomlioError as exc:
            if self._on_error is not None:
                self._on_error(exc)
            raise


def decode_answer(raw: bytes) -> Any:
    """An answer's value, its lone surrogates replaced by U+FFFD (no UTF-8 can carry them
    to the store or a webhook; Go's JSON decoder does the same); raises ValueError or
    RecursionError (nested too deeply) for one that is not JSON."""
    return loads_utf8(raw)


def _status_error(method: str, status: int, detail: str,
                  retry_after: float | None) -> RoomlioError:
    text = f"{method}: HTTP {status}{': ' + detail if detail else ''}"
    if status in (401, 403):
        return RoomlioAuthError(f"{text} (check roomlio.api_key)", status=status)
    if status in TRANSIENT_STATUSES:
        return RoomlioTransientError(text, status=status, retry_after=retry_after)
    if status == 404:
        return RoomlioNotFoundError(text, status=status)
    if status == 400 and "cursor" in detail.lower():
        return RoomlioCursorError(text, status=status)
    return RoomlioPermanentError(text, status=status)


def _error_detail(raw: bytes, redact: Callable[[str], str]) -> str:
    """The ``code`` and ``message`` of an error answer: redacted whole, then escaped and cut
    (in that order: a secret cut in half no longer looks like the secret)."""
    try:
        body = loads(raw)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [shown(redact(str(body[k])), 200) for k in ("code", "message")
             if isinstance(body.get(k), (str, int, float)) and body[k] != ""]
    return " ".join(parts)
