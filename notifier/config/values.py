"""Converters of particular settings (the generic ones are in ``fields``).

Pure, like every converter: ``(value, shown) -> T`` or Invalid with a message naming the
fix. ``model`` declares each setting with its converter; the first line of a converter's
docstring is what the reference (docs/settings.md) says a value looks like.
"""

from __future__ import annotations

import importlib.util
import re
from datetime import UTC, datetime
from typing import Any, Literal, cast

from notifier.config.fields import Invalid, choice, integer, parse_duration, text

__all__ = ["AUTO_WORKERS", "HTTP_CLIENTS", "LOG_FORMATS", "LOG_LEVELS", "host_name",
           "http_client", "listen", "log_format", "log_level", "ratio", "retry_schedule",
           "start_from", "worker_count"]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log_format = choice(LOG_FORMATS, "log format")
#: The webhook transports (notifier.delivery.transport): ``auto`` is aiohttp, the faster
#: one by measurement; ``pyreqwest`` needs the ``pyreqwest`` extra.
HTTP_CLIENTS = ("auto", "aiohttp", "pyreqwest")
_http_client = choice(HTTP_CLIENTS, "HTTP client")


def http_client(value: Any, shown: str) -> str:
    """One of auto, aiohttp, pyreqwest."""
    name = _http_client(value, shown)
    if name == "pyreqwest" and importlib.util.find_spec("pyreqwest") is None:
        raise Invalid("pyreqwest is not installed: pip install "
                      "'roomlio-notifier[pyreqwest]', or use auto")
    return name


def log_level(value: Any, shown: str) -> str:
    """One of DEBUG, INFO, WARNING, ERROR (any case)."""
    return choice(LOG_LEVELS, "log level")(value.upper() if isinstance(value, str) else value,
                                           shown)


def start_from(value: Any, shown: str) -> Literal["now", "beginning"] | datetime:
    """now, beginning, or an ISO 8601 time with a timezone."""
    if value in ("now", "beginning"):
        return cast(Literal["now", "beginning"], value)
    try:
        moment = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise Invalid("use now, beginning or an ISO 8601 time with a timezone, "
                      f"like 2024-05-01T00:00:00Z (got {shown})")
    if moment.tzinfo is None:
        raise Invalid(f"has no timezone; add Z or an offset like +02:00 (got {shown})")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise Invalid(f"is out of range (got {shown})") from None


#: ``delivery.workers: auto`` until the config knows its state (see schema: cores - 1).
AUTO_WORKERS = -1
_WORKERS = integer(0, 64)


def worker_count(value: Any, shown: str) -> int:
    """auto, or a whole number from 0 to 64."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return AUTO_WORKERS
    try:
        return _WORKERS(value, shown)
    except Invalid:
        raise Invalid(f"must be auto or a whole number from 0 to 64 (got {shown})") from None


def ratio(value: Any, shown: str) -> float:
    """A share above 0 and at most 1, like 0.7 or 70%."""
    number: Any = value
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 < number <= 1:
        raise Invalid(f"must be a share like 0.7 or 70% (above 0, at most 1) (got {shown})")
    return float(number)


def retry_schedule(value: Any, shown: str) -> tuple[float, ...]:
    """A non-empty list of durations, like [5s, 5m, 30m, 2h]."""
    if not isinstance(value, list) or not value:
        raise Invalid(f"must be a non-empty list of durations like [5s, 5m, 30m, 2h] "
                      f"(got {shown})")
    steps = []
    for i, item in enumerate(value):
        try:
            seconds = parse_duration(item)
        except ValueError:
            seconds = -1.0
        if seconds <= 0:
            raise Invalid(f"item {i} must be a duration greater than 0, like 5s or 2h")
        steps.append(seconds)
    return tuple(steps)


def listen(value: Any, shown: str) -> tuple[str, int]:
    """host:port, like 127.0.0.1:9464 or [::1]:9464."""
    host, sep, port = text(value, shown).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise Invalid(f"must be host:port, like 127.0.0.1:9464 (got {shown})")
    return host, int(port)


_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?i)\*|{_LABEL}(\.{_LABEL})*\.?")


def host_name(value: Any, shown: str) -> str:
    """A host name without scheme or port, or * for any."""
    name = text(value, shown).strip().lower()
    if not _HOST_NAME.fullmatch(name):
        raise Invalid(f"must be a host name without scheme or port, like notifier.example.com,"
                      f" or * for any (got {shown})")
    return name.rstrip(".")
