"""rules.yaml → frozen dataclasses. Every check happens here, once.

``load_config`` returns a Config or raises ConfigError with every problem found;
``check_config`` lists the problems without raising. The YAML plumbing (lines, duplicate
keys, ${VAR}) lives in ``yaml``, the typed reads in ``fields``, the schema in ``schema``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, NamedTuple

from notifier.config.yaml import parse
from notifier.errors import ConfigError, Problem
from notifier.util.schedule import STANDARD_SCHEDULE

if TYPE_CHECKING:  # format_fields imports this module
    from notifier.config.format_fields import FormatRules

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MAX_CONFIG_BYTES",
    "ClusterSettings",
    "Config",
    "DeliverySettings",
    "LoggingSettings",
    "Rate",
    "Room",
    "RoomlioSettings",
    "Rule",
    "ServerSettings",
    "Webhook",
    "check_config",
    "load_config",
]

MESSAGE_TYPES = frozenset({"user", "offline", "system"})
USER_TYPES = frozenset({"admin", "member", "embed", "embed_insecure"})
RULE_EVENTS = frozenset({"created", "edited"})


class Rate(NamedTuple):
    """A rate limit: at most ``requests`` per ``per`` seconds (in bursts of up to ``requests``)."""

    requests: int
    per: float


@dataclass(frozen=True)
class RoomlioSettings:
    """How to reach Roomlio and how often to ask."""

    base_url: str
    api_key: str = field(repr=False)
    poll_interval: float = 5.0
    max_poll_interval: float = 60.0
    """A quiet room's pause grows step by step up to this (never below poll_interval)."""
    max_requests_per_second: int = 0
    """RoomHistory requests a second for the whole process, all rooms; 0: no limit."""
    page_size: int = 100
    start_from: Literal["now", "beginning"] | datetime = "now"
    edit_lookback: float = 3600.0
    """Seconds; 0 turns edit detection off."""
    edit_scan_interval: float = 60.0
    request_timeout: float = 30.0
    max_response_bytes: int = 32 * 1024 * 1024
    max_pages_per_poll: int = 100
    """Pages one poll (or edit scan) of a room reads at most; a cursor that repeats within
    a poll ends it too. Either way the rest is read at the room's next poll."""


@dataclass(frozen=True, slots=True)  # slots: 100,000 rooms fit in one process
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
    max_attempts: int = len(STANDARD_SCHEDULE) + 1
    max_backoff: float = max(STANDARD_SCHEDULE)
    allow_private_urls: bool = False
    max_in_flight: int = 16
    shutdown_grace: float = 10.0
    workers: int = 0
    """Processes that POST for this one (see notifier.runtime.workers); 0: POST here."""
    retry_schedule: tuple[float, ...] | None = STANDARD_SCHEDULE
    """Seconds before each retry; None: exponential backoff (max_attempts, max_backoff)."""
    breaker_window: int = 20
    breaker_threshold: float = 0.7
    breaker_cooldown: float = 60.0
    breaker_min_attempts: int = 10
    breaker_period: float = 60.0
    disable_after: float = 5 * 86400.0
    """Disable a webhook failing without a success for this long; 0: never."""
    ordered: bool = False
    """Send each room's events one at a time, in ledger order (see Store.claim_due)."""


@dataclass(frozen=True)
class Webhook:
    """One destination, with its delivery settings resolved (defaults applied)."""

    name: str
    url: str = field(repr=False)
    secrets: tuple[bytes, ...] = field(default=(), repr=False)
    """Decoded signing keys: plain bytes sign ``v1`` (HMAC), an ``Ed25519Key`` signs
    ``v1a`` (see notifier.signing); empty means the requests are not signed."""
    timeout: float = 10.0
    max_attempts: int = 12
    max_backoff: float = 600.0
    allow_private_urls: bool = False
    max_in_flight: int = 16
    format: str = "standard"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    retry_schedule: tuple[float, ...] | None = None
    """Seconds before each retry; None: exponential backoff (max_attempts, max_backoff)."""
    breaker_window: int = 20
    """At most this many recent attempts are judged by the circuit breaker; 0: no breaker."""
    breaker_threshold: float = 0.7
    breaker_cooldown: float = 60.0
    """The longest wait of an open breaker before a probe (the probe backoff's cap)."""
    breaker_min_attempts: int = 10
    """Fewer judged attempts than this never open the breaker."""
    breaker_period: float = 60.0
    """Only attempts of the last this many seconds are judged."""
    disable_after: float = 5 * 86400.0
    """Disable the webhook when it fails without a success for this long; 0: never."""
    ordered: bool = False
    """One delivery per room at a time, in ledger order; a retried one holds back the rest."""
    rate_limit: Rate | None = None
    """None: unlimited (the default for standard and template)."""
    group_wait: float = 0.0
    """Seconds to collect one rule's events in one room into one message; 0: off."""
    template: str | None = field(default=None, repr=False)
    """The Jinja2 source of a ``template`` webhook (inline or read from template_file)."""
    template_name: str = "template"
    """Where the template came from, for messages (``webhooks.x.template`` or a file)."""
    content_type: str = "application/json"


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
    keywords_all: tuple[str, ...] = ()
    exclude_keywords: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    """Python ``re`` patterns, searched in the normalised text, case-insensitively."""
    has_links: bool | None = None
    link_type: frozenset[str] | None = None
    users: frozenset[str] | None = None
    exclude_users: frozenset[str] | None = None


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ServerSettings:
    """The ops listener: /metrics, /healthz, /readyz and the status page."""

    host: str = "127.0.0.1"
    port: int = 9464
    admin_token: str | None = field(default=None, repr=False)
    """Bearer token for state-changing actions (replay, enable); None disables them."""
    room_metrics_limit: int = 500
    """Rooms that get their own metric series; the rest are summed as room="_other"."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names requests may use besides localhost, IP addresses and the listen host
    (names a proxy or a scraper uses); "*" accepts any."""


@dataclass(frozen=True)
class LoggingSettings:
    """How logs are written (the command line may override both)."""

    format: Literal["text", "json"] = "text"
    level: str = "INFO"


@dataclass(frozen=True)
class ClusterSettings:
    """Several instances on one PostgreSQL state: room leases and outbox claims."""

    lease_ttl: float = 30.0
    """A room whose holder has not renewed its lease for this long is taken over."""
    heartbeat: float = 10.0
    """How often leases are renewed and rooms rebalanced (at most lease_ttl / 2)."""
    claim_timeout: float = 300.0
    """A claimed delivery not settled for this long may be sent by another instance."""
    pool_size: int = 8
    """Connections per instance in the PostgreSQL pool."""


@dataclass(frozen=True)
class Config:
    """A validated configuration; nothing downstream re-checks it."""

    path: str
    roomlio: RoomlioSettings
    rooms: tuple[Room, ...]
    state: str
    """The state store: a SQLite path (resolved against the config file's folder) or a
    ``postgresql://`` URL."""
    delivery: DeliverySettings
    webhooks: Mapping[str, Webhook]
    rules: tuple[Rule, ...]
    server: ServerSettings | None = None
    """The ops listener; None (no ``server:`` section) keeps it off."""
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    ops_webhook: str | None = None
    """The webhook that receives operational events (``webhook.disabled``)."""
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    """Leases and claims when ``state`` is PostgreSQL (unused with SQLite)."""


MAX_CONFIG_BYTES = 10 * 1024 * 1024
"""The largest config file read: several times what 100,000 rooms take; a bigger file is
refused before it is parsed, because parsing a huge one costs minutes and gigabytes before
it can be refused (figures in bench/RESULTS.md)."""


def _too_big(path: str, size: str) -> Problem:
    return Problem(path, None, "", f"file is {size} bytes; the limit is "
                                   f"{MAX_CONFIG_BYTES:,} bytes (10 MiB): split off what "
                                   "makes it so large")


def _read(path: str) -> str | Problem:
    try:
        with open(path, encoding="utf-8-sig") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                return _too_big(path, f"{size:,}")
            text = file.read(MAX_CONFIG_BYTES + 1)  # a pipe or a file still growing
            if len(text) > MAX_CONFIG_BYTES:
                return _too_big(path, f"more than {MAX_CONFIG_BYTES:,}")
            return text
    except FileNotFoundError:
        return Problem(path, None, "", "file not found")
    except UnicodeDecodeError as exc:
        return Problem(path, None, "", f"not UTF-8 text (bad byte at offset {exc.start})")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Problem(path, None, "", f"cannot read the file: {reason}")


def _load(path: str, env: Mapping[str, str] | None,
          formats: Mapping[str, FormatRules]) -> tuple[Config | None, list[Problem]]:
    source = _read(path)
    if isinstance(source, Problem):
        return None, [source]
    doc, problems = parse(source, path, os.environ if env is None else env)
    if doc is None:
        return None, problems
    if doc.data is None:
        return None, [Problem(path, None, "", "the file is empty; it needs roomlio, rooms, "
                                              "webhooks and rules")]
    from notifier.config.schema import build  # imported here: the schema builds the classes above

    config, schema_problems = build(doc, path, formats)
    problems = sorted(problems + schema_problems, key=lambda p: p.line or 0)
    return (None, problems) if problems else (config, [])


def check_config(path: str, env: Mapping[str, str] | None = None, *,
                 formats: Mapping[str, FormatRules]) -> list[Problem]:
    """Every problem in ``path`` (empty when it is valid); never raises for a bad file.

    ``formats`` are the payload formats a webhook may name (config knows none itself):
    ``notifier.delivery.formats.FORMATS``, whose ``check_config`` passes them.
    """
    return _load(path, env, formats)[1]


def load_config(path: str, env: Mapping[str, str] | None = None, *,
                formats: Mapping[str, FormatRules]) -> Config:
    """Load and validate ``path``; raise ConfigError listing every problem found.

    ``formats`` as for ``check_config``; ``notifier.delivery.formats.load_config`` is
    this function with the notifier's formats.
    """
    config, problems = _load(path, env, formats)
    if config is None:
        raise ConfigError(problems)
    return config
