"""The schema of the ops sections of rules.yaml: ``server:`` (the listener) and ``logging:``."""

from __future__ import annotations

import re
from typing import Any

from notifier.config.fields import MISSING, Conv, Invalid, Reader, choice, integer, text
from notifier.config.model import LOG_FORMATS, LOG_LEVELS, LoggingSettings, ServerSettings

__all__ = ["LOGGING_FIELDS", "SERVER_KEYS", "logging_settings", "server_settings"]

SERVER_KEYS = ("listen", "admin_token", "room_metrics_limit", "allowed_hosts")
#: An admin token shorter than this is refused: it guards replay and enable.
MIN_TOKEN = 16


def _level(value: Any, shown: str) -> str:
    return choice(LOG_LEVELS, "log level")(value.upper() if isinstance(value, str) else value,
                                           shown)


LOGGING_FIELDS: dict[str, Conv[Any]] = {
    "format": choice(LOG_FORMATS, "log format"),
    "level": _level,
}


def _listen(value: Any, shown: str) -> tuple[str, int]:
    host, sep, port = text(value, shown).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise Invalid(f"must be host:port, like 127.0.0.1:9464 (got {shown})")
    return host, int(port)


_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?i)\*|{_LABEL}(\.{_LABEL})*\.?")


def _host_name(value: Any, shown: str) -> str:
    name = text(value, shown).strip().lower()
    if not _HOST_NAME.fullmatch(name):
        raise Invalid(f"must be a host name without scheme or port, like notifier.example.com,"
                      f" or * for any (got {shown})")
    return name.rstrip(".")


def server_settings(r: Reader, value: Any) -> ServerSettings | None:
    """The ``server:`` section; None (no listener) when it is absent."""
    if value is MISSING:
        return None
    m = r.mapping(value, ("server",), SERVER_KEYS)
    if m is None:
        return None
    host, port = r.value(m, ("server",), "listen", _listen, ("127.0.0.1", 9464))
    token = r.value(m, ("server",), "admin_token", text, None)
    if token is not None and len(token) < MIN_TOKEN:
        r.problem(("server", "admin_token"), f"is too short; use at least {MIN_TOKEN} random "
                                             "characters, like the output of: openssl rand -hex 24")
    limit = r.value(m, ("server",), "room_metrics_limit", integer(0), 500)
    hosts = r.values(m, ("server",), "allowed_hosts", _host_name) or ()
    return ServerSettings(host, port, token, limit, hosts)


def logging_settings(r: Reader, value: Any) -> LoggingSettings:
    """The ``logging:`` section (defaults when absent)."""
    m = r.mapping(value, ("logging",), tuple(LOGGING_FIELDS))
    return LoggingSettings(**r.fields(m, ("logging",), LOGGING_FIELDS) if m else {})
