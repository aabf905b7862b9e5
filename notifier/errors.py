"""The notifier's one error tree; retry policies select by class.

    NotifierError
    ├── ConfigError                 a rules.yaml problem (carries every Problem found)
    ├── RoomlioError                talking to the Roomlio API
    │   ├── RoomlioTransientError   429, 5xx, timeouts, truncated or malformed pages: retry
    │   └── RoomlioPermanentError   other 4xx: retrying will not help
    │       ├── RoomlioAuthError    401/403: the API key is wrong
    │       ├── RoomlioNotFoundError  404: the room does not exist (any more)
    │       ├── RoomlioCursorError  400 naming the cursor: resume by time instead
    │       └── RoomlioAnswerTooLarge  over roomlio.max_response_bytes: ask for fewer
    ├── DeliveryError               POSTing an event to a webhook
    │   ├── DeliveryTransientError  network errors, timeouts, 408, 429, 5xx: retry
    │   ├── DeliveryPermanentError  other 4xx, refused targets: dead-letter at once
    │   │   └── PrivateAddressRefused  the SSRF guard refused a private address (also
    │   │                              an OSError: see its docstring)
    │   └── WebhookDisabledError    the webhook is disabled: keep the delivery, send nothing
    └── StoreError                  the state store (SQLite file, PostgreSQL)
        └── LeaseLost               a write for a room whose lease this instance lost

aiohttp's exceptions become these in one place, notifier.util.http_errors (the Roomlio
client and the webhook transport both use it). Outside the tree on purpose, because a
library's protocol needs their base class or they never leave the module that raises
them: ``SignatureError`` (a ValueError: the verdict on a signature or key, see
notifier.signing); the config reader's ``Invalid``, ``TooBig`` and ``NotStreamable``
and notifier.util.regex's ``PatternError`` (signals inside config loading, which turns
them into the Problems of one ConfigError); the template sandbox's ``BudgetExceeded``
(a Jinja ``SecurityError``, so the sandbox stops the render; the template format turns
it into a DeliveryPermanentError).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "DeliveryError",
    "DeliveryPermanentError",
    "DeliveryTransientError",
    "LeaseLost",
    "NotifierError",
    "PrivateAddressRefused",
    "Problem",
    "RoomlioAnswerTooLarge",
    "RoomlioAuthError",
    "RoomlioCursorError",
    "RoomlioError",
    "RoomlioNotFoundError",
    "RoomlioPermanentError",
    "RoomlioTransientError",
    "StoreError",
    "WebhookDisabledError",
]


class NotifierError(Exception):
    """Base of every error the notifier raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file, located so a person can fix it."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(NotifierError):
    """The configuration is invalid; ``problems`` lists every issue found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RoomlioError(NotifierError):
    """A call to the Roomlio API failed."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RoomlioTransientError(RoomlioError):
    """A Roomlio failure that may pass: retry with backoff."""


class RoomlioPermanentError(RoomlioError):
    """A Roomlio failure that retrying cannot fix."""


class RoomlioAuthError(RoomlioPermanentError):
    """Roomlio refused the API key (401/403)."""


class RoomlioNotFoundError(RoomlioPermanentError):
    """The room does not exist (404), perhaps deleted."""


class RoomlioCursorError(RoomlioPermanentError):
    """Roomlio no longer knows the cursor we sent (400): resume by time instead."""


class RoomlioAnswerTooLarge(RoomlioPermanentError):
    """An answer larger than ``roomlio.max_response_bytes``: the same request would get it
    again, so it is not retried; a request for fewer messages may fit."""


class DeliveryError(NotifierError):
    """A POST to a webhook failed."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class DeliveryTransientError(DeliveryError):
    """A delivery failure worth retrying."""


class DeliveryPermanentError(DeliveryError):
    """A delivery failure that goes straight to the dead letters."""


class PrivateAddressRefused(DeliveryPermanentError, OSError):
    """A webhook host resolved to an address that allow_private_urls does not permit.

    Also an OSError: it is raised inside aiohttp's resolver and socket factory, where
    only an OSError is taken for a failed connection attempt (aiohttp then wraps it in a
    ClientConnectorError, which the mapping turns back into a DeliveryPermanentError).
    """


class WebhookDisabledError(DeliveryError):
    """The webhook is disabled: the delivery stays in the outbox, unsent and undamaged."""


class StoreError(NotifierError):
    """The state store failed or holds something we cannot use."""


class LeaseLost(StoreError):
    """This instance no longer holds the lease of a room it tried to write for."""

    def __init__(self, rooms: frozenset[str] | set[str]) -> None:
        self.rooms = frozenset(rooms)
        super().__init__(f"lease lost on room(s) {', '.join(sorted(self.rooms))}: another "
                         "instance may tail them now; nothing was written")
