"""rules.yaml → frozen dataclasses. Every check happens here, once.

(Contract for the loader: see load_config.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "Config",
    "DeliverySettings",
    "Room",
    "RoomlioSettings",
    "Rule",
    "Webhook",
    "load_config",
]

MESSAGE_TYPES = frozenset({"user", "offline", "system"})
USER_TYPES = frozenset({"admin", "member", "embed", "embed_insecure"})
RULE_EVENTS = frozenset({"created", "edited"})


@dataclass(frozen=True)
class RoomlioSettings:
    """How to reach Roomlio and how often to ask."""

    base_url: str
    api_key: str = field(repr=False)
    poll_interval: float = 5.0
    page_size: int = 100
    start_from: Literal["now", "beginning"] | datetime = "now"
    edit_lookback: float = 3600.0
    """Seconds; 0 turns edit detection off."""
    edit_scan_interval: float = 60.0
    request_timeout: float = 30.0
    max_response_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class Room:
    """A room to tail, named by exactly one of its Roomlio id or the integrator's key."""

    id: str | None = None
    key: str | None = None

    @property
    def name(self) -> str:
        """The name used for the room in state, logs and events."""
        return self.id if self.id is not None else str(self.key)

    def params(self) -> dict[str, str]:
        """The RoomHistory parameter that names this room."""
        return {"roomID": self.id} if self.id is not None else {"roomKey": str(self.key)}


@dataclass(frozen=True)
class DeliverySettings:
    """Defaults for every webhook."""

    timeout: float = 10.0
    max_attempts: int = 12
    max_backoff: float = 600.0
    allow_private_urls: bool = False
    max_in_flight: int = 16
    shutdown_grace: float = 10.0


@dataclass(frozen=True)
class Webhook:
    """One destination, with its delivery settings resolved (defaults applied)."""

    name: str
    url: str = field(repr=False)
    secrets: tuple[bytes, ...] = field(default=(), repr=False)
    """Decoded HMAC keys; empty means the requests are not signed."""
    timeout: float = 10.0
    max_attempts: int = 12
    max_backoff: float = 600.0
    allow_private_urls: bool = False
    max_in_flight: int = 16
    format: str = "standard"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Rule:
    """One rule as written; matching is compiled from these by notifier.rules."""

    name: str
    notify: tuple[str, ...]
    events: frozenset[str] = RULE_EVENTS
    rooms: frozenset[str] | None = None
    message_type: frozenset[str] | None = None
    user_type: frozenset[str] | None = None
    keywords: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Config:
    """A validated configuration; nothing downstream re-checks it."""

    path: str
    roomlio: RoomlioSettings
    rooms: tuple[Room, ...]
    state: str
    """The state store: a SQLite path (resolved against the config file's folder)."""
    delivery: DeliverySettings
    webhooks: Mapping[str, Webhook]
    rules: tuple[Rule, ...]


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate ``path``; raise ConfigError listing every problem found."""
    raise NotImplementedError
