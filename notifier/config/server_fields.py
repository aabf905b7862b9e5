"""The schema of the ops sections of rules.yaml: ``server:`` (the listener) and ``logging:``.

The keys, converters and defaults are declared in ``model`` (ServerSettings,
LoggingSettings); what is read here beyond them: ``listen`` fills two fields, and an
admin token must be long enough.
"""

from __future__ import annotations

from typing import Any

from notifier.config.fields import MISSING, Reader
from notifier.config.model import MIN_ADMIN_TOKEN, LoggingSettings, ServerSettings
from notifier.config.settings import table

__all__ = ["LOGGING_FIELDS", "SERVER_KEYS", "logging_settings", "server_settings"]

_SERVER = table(ServerSettings)
SERVER_KEYS = tuple(_SERVER)
_DEFAULT = ServerSettings()
LOGGING_FIELDS = table(LoggingSettings)


def server_settings(r: Reader, value: Any) -> ServerSettings | None:
    """The ``server:`` section; None (no listener) when it is absent."""
    if value is MISSING:
        return None
    path = ("server",)
    m = r.mapping(value, path, SERVER_KEYS)
    if m is None:
        return None
    host, port = r.value(m, path, "listen", _SERVER["listen"], (_DEFAULT.host, _DEFAULT.port))
    token = r.value(m, path, "admin_token", _SERVER["admin_token"], _DEFAULT.admin_token)
    if token is not None and len(token) < MIN_ADMIN_TOKEN:
        r.problem(("server", "admin_token"), f"is too short; use at least {MIN_ADMIN_TOKEN} "
                                             "random characters, like the output of: "
                                             "openssl rand -hex 24")
    limit = r.value(m, path, "room_metrics_limit", _SERVER["room_metrics_limit"],
                    _DEFAULT.room_metrics_limit)
    hosts = r.values(m, path, "allowed_hosts", _SERVER["allowed_hosts"]) or _DEFAULT.allowed_hosts
    return ServerSettings(host, port, token, limit, hosts)


def logging_settings(r: Reader, value: Any) -> LoggingSettings:
    """The ``logging:`` section (defaults when absent)."""
    m = r.mapping(value, ("logging",), tuple(LOGGING_FIELDS))
    return LoggingSettings(**r.fields(m, ("logging",), LOGGING_FIELDS) if m else {})
