"""The settings of rules.yaml, each declared once, and the frozen dataclasses that hold them.

Each field made with ``setting(default, converter, doc)`` is one key of rules.yaml: the
schema reads and checks it with that converter, the default applies when the key is
absent, and docs/settings.md (``python -m notifier.config.reference``) shows all three.
Adding a setting is adding its field here. ``load`` reads a file into these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from notifier.config.fields import boolean, duration, http_url, integer, text
from notifier.config.settings import Setting, inherit, one_or_list, setting
from notifier.config.values import (
    LOG_FORMATS,
    LOG_LEVELS,
    host_name,
    http_client,
    listen,
    log_format,
    log_level,
    ratio,
    retry_schedule,
    start_from,
    worker_count,
)
from notifier.util.schedule import STANDARD_SCHEDULE

__all__ = [
    "EXPONENTIAL_DEFAULTS",
    "LINK_TYPES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MAX_CONFIG_BYTES",
    "MIN_ADMIN_TOKEN",
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
]

MESSAGE_TYPES = frozenset({"user", "offline", "system"})
USER_TYPES = frozenset({"admin", "member", "embed", "embed_insecure"})
RULE_EVENTS = frozenset({"created", "edited"})
LINK_TYPES = ("image",)
MAX_CONFIG_BYTES = 10 * 1024 * 1024
"""The largest config file read: 100,000 rooms take about 3 MB; a bigger file is refused
before it is parsed (a 50 MB one took a minute and 2.5 GB to refuse)."""
DEFAULT_STATE = "notifier.db"
"""The state file when ``state`` is not given, in the config file's folder."""
STATE = Setting("state", None, "the state store: a SQLite file (relative to the config file's "
                "folder) or a `postgresql://` URL", DEFAULT_STATE, "A path or a URL")
"""The top-level ``state`` key (read by ``schema``; Config.state has no default to carry it)."""
EXPONENTIAL_DEFAULTS: Mapping[str, Any] = {"max_attempts": 12, "max_backoff": 600.0}
"""The half of exponential backoff not given, when ``max_attempts`` or ``max_backoff``
replaces a retry schedule (see ``delivery_fields.resolve_retry``)."""
MIN_ADMIN_TOKEN = 16
"""An admin token shorter than this is refused: it guards replay and enable."""
_LISTEN = ("127.0.0.1", 9464)


class Rate(NamedTuple):
    """A rate limit: at most ``requests`` per ``per`` seconds (in bursts of up to ``requests``)."""

    requests: int
    per: float


@dataclass(frozen=True)
class RoomlioSettings:
    """How to reach Roomlio and how often to ask (the ``roomlio:`` section)."""

    base_url: str = setting(MISSING, http_url, "`RoomHistory` is POSTed to "
                            "`{base_url}/RoomHistory`")
    api_key: str = setting(MISSING, text, "sent as `Authorization: Bearer <key>`; never logged",
                           repr=False)
    poll_interval: float = setting(5.0, duration(), "pause between two polls of a room that "
                                   "has news")
    max_poll_interval: float = setting(60.0, duration(), "a quiet room's pause doubles with "
                                       "each empty poll (from the second in a row) up to this, "
                                       "and falls back to `poll_interval` at its first new "
                                       "message; set it to `poll_interval` for fixed polling")
    max_requests_per_second: int = setting(0, integer(0), "RoomHistory requests a second for "
                                           "the whole process, all rooms and retries included; "
                                           "rooms take turns in the order they fell due; `0`: "
                                           "no limit")
    page_size: int = setting(1000, integer(1, 1000), "the `limit` sent: the most messages one "
                             "request asks for (a backlog is read in that many; at most 16 "
                             "rooms at once read pages of more than 100, the others 100)")
    start_from: Literal["now", "beginning"] | datetime = setting(
        "now", start_from, "where a room with no saved cursor starts")
    edit_lookback: float = setting(3600.0, duration(allow_zero=True), "how far back edits are "
                                   "looked for; `0` turns edit detection off")
    edit_scan_interval: float = setting(60.0, duration(), "how often that window is re-read "
                                        "(at the poll nearest to it; a re-read that finds "
                                        "nothing new is that poll)")
    request_timeout: float = setting(30.0, duration(), "per RoomHistory request")
    max_response_bytes: int = setting(32 * 1024 * 1024, integer(1), "the largest RoomHistory "
                                      "answer read, in bytes; a page over it is asked for "
                                      "again in a tenth of the messages, down to one; a "
                                      "single message over it holds its room")
    max_pages_per_poll: int = setting(100, integer(1), "pages one poll (or edit scan) of a "
                                      "room reads at most; a `nextCursor` already asked for in "
                                      "the same poll ends it too (a Roomlio that loops). Either "
                                      "way a WARNING names the room, and the rest is read at "
                                      "the room's next poll, at its usual pace")


@dataclass(frozen=True, slots=True)  # slots: 100,000 rooms fit in one process
class Room:
    """A room to tail, named by exactly one of its Roomlio id or the integrator's key."""

    id: str | None = setting(None, text, "Roomlio's `rm_…` id (give `id` or `key`)")
    key: str | None = setting(None, text, "your own room key (give `id` or `key`)")

    @property
    def name(self) -> str:
        """The name used for the room in state, logs and events."""
        return self.id if self.id is not None else str(self.key)

    def params(self) -> dict[str, str]:
        """The RoomHistory parameter that names this room."""
        return {"roomID": self.id} if self.id is not None else {"roomKey": str(self.key)}


@dataclass(frozen=True)
class DeliverySettings:
    """Defaults for every webhook (the ``delivery:`` section); each webhook may override
    any of them but ``shutdown_grace`` and ``workers``, which are about the process."""

    timeout: float = setting(10.0, duration(), "per attempt")
    max_attempts: int = setting(
        len(STANDARD_SCHEDULE) + 1, integer(1), "attempts before the delivery becomes a dead "
        "letter (with a schedule: its length + 1); setting it (or `max_backoff`) instead of "
        "`retry_schedule` chooses exponential backoff with full jitter (then the default is "
        f"`{EXPONENTIAL_DEFAULTS['max_attempts']}`)")
    max_backoff: float = setting(
        max(STANDARD_SCHEDULE), duration(), "the longest wait between two attempts (with a "
        "schedule: its longest step); with exponential backoff the default is "
        f"`{EXPONENTIAL_DEFAULTS['max_backoff']:g}s`")
    allow_private_urls: bool = setting(False, boolean, "allow targets on loopback, private, "
                                       "link-local or unspecified addresses")
    max_in_flight: int = setting(16, integer(1), "concurrent requests to one webhook")
    http_client: str = setting("auto", http_client, "the HTTP client that POSTs: `auto` "
                               "(the one measured fastest: aiohttp), `aiohttp`, or `pyreqwest` "
                               "(Rust's reqwest, installed by the `pyreqwest` extra; see "
                               "[delivery](delivery.md))")
    shutdown_grace: float = setting(10.0, duration(allow_zero=True), "how long a stopping "
                                    "notifier lets requests in flight finish")
    workers: int = setting(0, worker_count, "delivery worker processes that claim and POST "
                           "the deliveries from the SQLite outbox, on more cores; webhooks "
                           "with `rate_limit`, `group_wait` or `ordered` stay with the main "
                           "process, and a worker that dies is restarted; SQLite state only; "
                           "`0`: the main process POSTs; `auto`: one per core but one (none "
                           "with PostgreSQL)")
    # None (a webhook's max_attempts/max_backoff chose it): exponential backoff
    retry_schedule: tuple[float, ...] | None = setting(
        STANDARD_SCHEDULE, retry_schedule, "the wait before each retry (the Standard Webhooks "
        "schedule by default: 8 attempts over about 27.6 hours); each wait is stretched by up "
        "to 10% at random, and a longer `Retry-After` wins")
    breaker_window: int = setting(20, integer(0, 10000), "the circuit breaker judges at most "
                                  "this many recent attempts; `0` turns it off")
    breaker_threshold: float = setting(0.7, ratio, "the share of failures among the judged "
                                       "attempts that opens the breaker")
    breaker_cooldown: float = setting(60.0, duration(), "the longest an open breaker waits "
                                      "before a probe: the first comes after about 1s, each failed "
                                      "one makes the next wait 1.6× longer (±20% jitter), up "
                                      "to this")
    breaker_min_attempts: int = setting(10, integer(1, 10000), "fewer judged attempts never "
                                        "open the breaker; at most `breaker_window` (a smaller "
                                        "window lowers an inherited value)")
    breaker_period: float = setting(60.0, duration(), "only attempts of this last stretch of "
                                    "time are judged")
    disable_after: float = setting(5 * 86400.0, duration(allow_zero=True), "a webhook failing "
                                   "without a single success this long is disabled; `0`: never")
    ordered: bool = setting(False, boolean, "one delivery at a time per room, in the order the "
                            "tail saw the events; a retried one holds back the rest of its "
                            "room; not with `group_wait`")


@dataclass(frozen=True)
class Webhook:
    """One destination, with its delivery settings resolved (``delivery``'s, overridden by
    the webhook's own keys): its fields from ``timeout`` on start as ``delivery``'s."""

    name: str
    url: str = setting(MISSING, http_url, "where the events are POSTed", repr=False)
    secrets: tuple[bytes, ...] = setting(
        (), None, "signing keys: a `whsec_` secret signs `v1` (HMAC), a `whsk_` ed25519 key "
        "signs `v1a`; a list signs with each (rotation); none: requests are not signed",
        key="secret", kind=one_or_list("secrets"), repr=False)
    timeout: float = inherit(DeliverySettings, "timeout")
    max_attempts: int = inherit(DeliverySettings, "max_attempts")
    max_backoff: float = inherit(DeliverySettings, "max_backoff")
    allow_private_urls: bool = inherit(DeliverySettings, "allow_private_urls")
    max_in_flight: int = inherit(DeliverySettings, "max_in_flight")
    http_client: str = inherit(DeliverySettings, "http_client")
    format: str = setting("standard", None, "the payload: `standard` (the signed event), "
                          "`cloudevents`, `slack`, `teams` or `template` (see "
                          "[formats](formats.md))",
                          kind="A format name")
    headers: Mapping[str, str] = setting(
        None, None, "request headers added in every format; their values are never logged",
        kind="A mapping of header names to values", factory=dict, repr=False)
    retry_schedule: tuple[float, ...] | None = inherit(DeliverySettings, "retry_schedule")
    breaker_window: int = inherit(DeliverySettings, "breaker_window")
    breaker_threshold: float = inherit(DeliverySettings, "breaker_threshold")
    breaker_cooldown: float = inherit(DeliverySettings, "breaker_cooldown")
    breaker_min_attempts: int = inherit(DeliverySettings, "breaker_min_attempts")
    breaker_period: float = inherit(DeliverySettings, "breaker_period")
    disable_after: float = inherit(DeliverySettings, "disable_after")
    ordered: bool = inherit(DeliverySettings, "ordered")
    rate_limit: Rate | None = setting(
        None, None, "at most N requests per period, in bursts of up to N; extra matches "
        "queue; a 429's `Retry-After` pauses the webhook",
        kind="A rate like 1/s, 4/s, 100/m or 10/30s, or none")
    group_wait: float = setting(0.0, duration(allow_zero=True), "slack and teams only: one "
                                "rule's matches in one room within this window are sent as "
                                "one message; `0`: off")
    template: str | None = setting(None, text, "format `template` only: the Jinja2 text "
                                   "(or `template_file`, a file relative to the config's "
                                   "folder; exactly one of them)", repr=False)
    template_name: str = "template"
    """Where the template came from, for messages (``webhooks.x.template`` or a file)."""
    content_type: str = setting("application/json", None, "format `template` only: the "
                                "`content-type` sent", kind="A media type")
    cloudevents_mode: str = setting("structured", None, "format `cloudevents` only: "
                                    "`structured` (the whole event in the body) or `binary` "
                                    "(the data in the body, the attributes in `ce-*` headers)",
                                    kind="`structured` or `binary`")


@dataclass(frozen=True)
class Rule:
    """One rule as written; matching is compiled from these by notifier.rules."""

    name: str = setting(MISSING, text, "unique")
    notify: tuple[str, ...] = setting(MISSING, None, "the webhooks to send a match to",
                                      kind=one_or_list("webhook names"))
    events: frozenset[str] = setting(RULE_EVENTS, None, "which versions the rule looks at",
                                     kind=one_or_list(RULE_EVENTS))
    rooms: frozenset[str] | None = setting(None, None, "the rooms it looks at",
                                           kind=one_or_list("room ids or keys, as configured"),
                                           shown="every room")
    message_type: frozenset[str] | None = setting(
        None, None, "the message types that match", kind=one_or_list(MESSAGE_TYPES), shown="any")
    user_type: frozenset[str] | None = setting(
        None, None, "the sender types that match", kind=one_or_list(USER_TYPES), shown="any")
    keywords: tuple[str, ...] = setting((), None, "any of them; whole words or phrases, "
                                        "case-insensitive", kind=one_or_list("words or phrases"),
                                        shown="any text")
    line: int | None = None
    keywords_all: tuple[str, ...] = setting((), None, "every one of them must appear "
                                            "(in any order)", kind=one_or_list("words or phrases"))
    exclude_keywords: tuple[str, ...] = setting((), None, "none of them may appear",
                                                kind=one_or_list("words or phrases"))
    regex: tuple[str, ...] = setting((), None, "any of these RE2 patterns is found in "
                                     "the normalised text (case-insensitive); one RE2 "
                                     "refuses is a `check` error", kind=one_or_list("patterns"))
    has_links: bool | None = setting(None, boolean, "`true`: at least one link; `false`: none",
                                     shown="either")
    link_type: frozenset[str] | None = setting(None, None, "at least one link of one of these "
                                               "types", kind=one_or_list(LINK_TYPES), shown="any")
    users: frozenset[str] | None = setting(None, None, "only messages from these users",
                                           kind=one_or_list("`usr_…` user ids"), shown="any")
    exclude_users: frozenset[str] | None = setting(None, None, "users whose messages never "
                                                   "match", kind=one_or_list("`usr_…` user ids"))


@dataclass(frozen=True)
class ServerSettings:
    """The ops listener: /metrics, /healthz, /readyz and the status page."""

    host: str = setting(_LISTEN[0], listen, "`host:port` for `/metrics`, `/healthz`, "
                        "`/readyz` and the status page `/`", key="listen",
                        shown=f"`{_LISTEN[0]}:{_LISTEN[1]}`")
    port: int = _LISTEN[1]
    admin_token: str | None = setting(None, text, f"bearer token ({MIN_ADMIN_TOKEN}+ "
                                      "characters) for the status page's replay and enable; "
                                      "without it they are refused", repr=False)
    room_metrics_limit: int = setting(500, integer(0), "rooms (in config order) with their "
                                      "own `room` label (and charts of their own on the status "
                                      "page); the rest count as `room=\"_other\"`")
    allowed_hosts: tuple[str, ...] = setting(
        (), host_name, "host names requests may carry in `Host` besides `localhost`, IP "
        "addresses and the `listen` host (a proxy's or a scraper's); `*` accepts any; "
        "other names get 421 (a DNS-rebinding defence), `/healthz` answers any",
        kind=one_or_list("host names without scheme or port"))


@dataclass(frozen=True)
class LoggingSettings:
    """How logs are written (the command line may override both)."""

    format: Literal["text", "json"] = setting("text", log_format, "`text` for people, `json` "
                                              "for log pipelines (one object per line); "
                                              "`--log-format` overrides it")
    level: str = setting("INFO", log_level, "`--log-level` overrides it")


@dataclass(frozen=True)
class ClusterSettings:
    """Several instances on one PostgreSQL state: room leases and outbox claims."""

    lease_ttl: float = setting(30.0, duration(), "a room whose holder has not renewed its "
                               "lease for this long is taken over")
    heartbeat: float = setting(10.0, duration(), "how often leases are renewed and rooms "
                               "rebalanced; at most `lease_ttl / 2`")
    claim_timeout: float = setting(300.0, duration(), "a claimed delivery not settled for "
                                   "this long (plus its retry wait) may be sent by another "
                                   "instance")
    pool_size: int = setting(8, integer(1, 100), "connections per instance in the PostgreSQL "
                             "pool")


@dataclass(frozen=True)
class Config:
    """A validated configuration; nothing downstream re-checks it."""

    path: str
    roomlio: RoomlioSettings
    rooms: tuple[Room, ...]
    state: str
    """The state store: a SQLite path (resolved against the config file's folder) or a
    ``postgresql://`` URL (declared as ``STATE``)."""
    delivery: DeliverySettings
    webhooks: Mapping[str, Webhook]
    rules: tuple[Rule, ...]
    server: ServerSettings | None = None
    """The ops listener; None (no ``server:`` section) keeps it off."""
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    ops_webhook: str | None = setting(None, None, "the webhook that receives operational "
                                      "events (`webhook.disabled`)", kind="A webhook name")
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    """Leases and claims when ``state`` is PostgreSQL (unused with SQLite)."""
