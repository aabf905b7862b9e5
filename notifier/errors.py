"""The notifier's one error tree; retry policies select by class.

    NotifierError
    ├── ConfigError                 a rules.yaml problem (carries every Problem found)
    ├── RoomlioError                talking to the Roomlio API
    │   ├── RoomlioTransientError   429, 5xx, timeouts, truncated or malformed pages: retry
    │   └── RoomlioPermanentError   other 4xx: retrying will not help
    │       └── RoomlioAuthError    401/403: the API key is wrong
    ├── DeliveryError               POSTing an event to a webhook
    │   ├── DeliveryTransientError  network errors, timeouts, 408, 429, 5xx: retry
    │   ├── DeliveryPermanentError  other 4xx, refused targets: dead-letter at once
    │   └── WebhookDisabledError    the webhook is disabled: keep the delivery, send nothing
    └── StoreError                  the state store (SQLite file, PostgreSQL)
        └── LeaseLost               a write for a room whose lease this instance lost
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
    "Problem",
    "RoomlioAuthError",
    "RoomlioError",
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
