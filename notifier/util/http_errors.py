"""One mapping from aiohttp's exceptions to the notifier's error tree (httpx's
``map_exceptions`` is the model).

``_TABLE`` says, for each exception the HTTP client raises, what kind of failure it is
(retry it or not) and what went wrong in words built only from the parts of the
exception that cannot hold a URL (host, port, the OS's reason): aiohttp's own texts
carry the request URL (``ClientResponseError``, ``InvalidURL``), normalised on the way
(``%2F`` becomes ``/``), so redaction that looks for the configured text would miss
them. The Roomlio client and the webhook transport both wrap their request in an
``ErrorMap``, which raises their side's transient or permanent class, worded by them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from notifier.errors import NotifierError, PrivateAddressRefused

__all__ = ["HTTP_ERRORS", "ErrorMap", "Failure", "Mapped", "classify"]


class Failure(enum.Enum):
    """What kind of failure an HTTP client's exception stands for."""

    TIMEOUT = "no answer in time"
    NETWORK = "the connection or the answer failed"
    REFUSED = "the SSRF guard refused a private address"
    BAD_URL = "the URL cannot be sent"
    UNSENDABLE = "the request cannot be built"

    @property
    def transient(self) -> bool:
        """Whether trying again may help (a refusal or a bad request stays so)."""
        return self in (Failure.TIMEOUT, Failure.NETWORK)


@dataclass(frozen=True, slots=True)
class Mapped:
    """An HTTP client's exception, classified and described without its URL."""

    failure: Failure
    reason: str
    error: BaseException


def _connector_text(exc: aiohttp.ClientConnectorError) -> str:
    reason = exc.os_error.strerror or type(exc.os_error).__name__
    return f"cannot connect to {exc.host}:{exc.port}: {reason}"


def _ssl_text(exc: aiohttp.ClientSSLError) -> str:
    error = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None)
    reason = (getattr(error, "verify_message", None) or getattr(error, "reason", None)
              or type(error).__name__)
    return f"TLS failed: {reason}"


def _name(exc: BaseException) -> str:
    return type(exc).__name__


_Text = Callable[[Any], str]
_NETWORK = Failure.NETWORK

#: Each exception's kind and URL-free words; the first match applies. A TimeoutError
#: comes first: aiohttp's ServerTimeoutError is one too. A connection error is turned
#: into REFUSED by ``classify`` when the SSRF guard caused it. InvalidURL is a
#: ValueError too; a plain ValueError is a request aiohttp refuses to build (say,
#: credentials in the URL and an Authorization header): no retry will change that.
_TABLE: tuple[tuple[type[BaseException], Failure, _Text], ...] = (
    (TimeoutError, Failure.TIMEOUT, lambda e: "timed out waiting for the answer"),
    (aiohttp.ClientSSLError, _NETWORK, _ssl_text),
    (aiohttp.ClientConnectorDNSError, _NETWORK, lambda e: f"cannot resolve {e.host}"),
    (aiohttp.ClientConnectorError, _NETWORK, _connector_text),
    (aiohttp.InvalidURL, Failure.BAD_URL,
     lambda e: "the url cannot be sent by the HTTP client"),
    (aiohttp.ServerDisconnectedError, _NETWORK,
     lambda e: "the server closed the connection without an answer"),
    (aiohttp.ClientPayloadError, _NETWORK, lambda e: "the answer's body is malformed"),
    (aiohttp.ClientResponseError, _NETWORK, lambda e: f"malformed answer: {e.message}"),
    (aiohttp.ClientOSError, _NETWORK,
     lambda e: f"connection failed: {e.strerror or type(e).__name__}"),
    (aiohttp.ClientError, _NETWORK, _name),
    (ValueError, Failure.UNSENDABLE, _name),
)

#: What an ErrorMap catches: everything ``_TABLE`` knows.
HTTP_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, aiohttp.ClientError, ValueError)


def _refused(error: OSError) -> bool:
    # aiohappyeyeballs folds the refusals of several addresses into one plain OSError
    return isinstance(error, PrivateAddressRefused) or "private address" in str(error)


def classify(exc: BaseException) -> Mapped | None:
    """What ``exc`` means, per ``_TABLE``; None when it is not the HTTP client's."""
    for kind, failure, text in _TABLE:
        if isinstance(exc, kind):
            if isinstance(exc, aiohttp.ClientConnectorError) and _refused(exc.os_error):
                failure = Failure.REFUSED
            return Mapped(failure, text(exc), exc)
    return None


class ErrorMap:
    """A context manager raising ``transient`` or ``permanent`` for the HTTP client's
    exceptions within it, worded by ``word``; other exceptions pass untouched.

    Stateless once built, so one serves every request of a client, concurrent or not.
    """

    __slots__ = ("permanent", "transient", "word")

    def __init__(self, transient: Callable[[str], NotifierError],
                 permanent: Callable[[str], NotifierError],
                 word: Callable[[Mapped], str]) -> None:
        self.transient, self.permanent, self.word = transient, permanent, word

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        mapped = classify(exc) if isinstance(exc, HTTP_ERRORS) else None
        if mapped is not None:
            error = self.transient if mapped.failure.transient else self.permanent
            # from None: the library's exception, URL and all, is not chained to ours
            raise error(self.word(mapped)) from None
