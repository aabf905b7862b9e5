"""Logging set-up: human-readable text or one JSON object per line, always redacted.

The redaction filter sits on the handler, so every record is cleaned whatever its logger
or level: the config's secrets (API key, webhook secrets, header values, webhook URLs,
the admin token) are replaced by their names, and anything shaped like a credential
(``Authorization`` values, bearer tokens, ``whsec_`` and ``whsk_`` secrets,
``user:password@`` in a URL) is masked even when it is not in the config. A configured
secret is found in any spelling and by its long fragments (notifier.util.redaction).

Text lines escape control characters, so remote text cannot start a line of its own; a
traceback follows its record indented.

JSON lines carry ``time``, ``level``, ``logger`` and ``event`` (the message) always, and
``room``, ``webhook``, ``event_id``, ``attempt``, ``status``, ``duration`` (seconds) and
``error`` (a traceback) when the line is about one of them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit

from notifier.config import Config
from notifier.util.redaction import MIN_SECRET, Redactor, webhook_secrets
from notifier.util.shown import escape as escape_controls

__all__ = ["FIELDS", "JsonFormatter", "RedactionFilter", "TextFormatter", "config_secrets",
           "escape_controls", "setup_logging"]

#: The optional structured fields, in output order (``extra={...}`` in a log call).
FIELDS = ("room", "webhook", "event_id", "attempt", "status", "duration")
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Characters that end a line for some reader (terminals, str.splitlines, log shippers) or
# rewrite what a terminal shows, besides C0: DEL, C1, the Unicode line and paragraph
# separators, and the bidirectional overrides. Text lines escape these and every other
# unprintable character (notifier.util.shown); JSON escapes C0 itself, and these here
# (valid JSON either way).
_CONTROLS = [0x7F, *range(0x80, 0xA0), 0x2028, 0x2029,
             *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in _CONTROLS}
_INDENT = "    "



def config_secrets(config: Config) -> dict[str, str]:
    """Every secret value of ``config``, mapped to the name shown in its place."""
    found: dict[str, str] = {config.roomlio.api_key: "roomlio.api_key"}
    if "://" in config.state:  # a PostgreSQL URL: its password
        found.update({part: "state" for part in (urlsplit(config.state).password,) if part})
    if config.server is not None and config.server.admin_token:
        found[config.server.admin_token] = "server.admin_token"
    for name, hook in config.webhooks.items():
        found.update(webhook_secrets(name, hook.url, hook.secrets, hook.headers))
    return {value: name for value, name in found.items() if len(value) >= MIN_SECRET}


class RedactionFilter(logging.Filter):
    """Replace secrets in a record's message, arguments, traceback and fields.

    A known secret is found in any spelling and by its long fragments (see
    notifier.util.redaction), so text cut short upstream leaks no part worth having.
    """

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.redact = Redactor(secrets or {}).redact
        """``text`` with every known secret and credential shape masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # the cleaned exc_text is what gets written
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key in FIELDS:
            value = record.__dict__.get(key)
            if isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class TextFormatter(logging.Formatter):
    """One line per record, control characters escaped; a traceback follows, indented.

    Only a record's first line starts at the left margin, so no remote text can make a
    line that looks like a record of its own.
    """

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for more in (record.exc_text, record.stack_info):
            if more:
                line += "".join(f"\n{_INDENT}{escape_controls(part)}"
                                for part in more.split("\n"))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line with a stable set of fields (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str).translate(_JSON_ESCAPES)


def setup_logging(level: str = "INFO", fmt: str = "text", *,
                  secrets: Mapping[str, str] | None = None,
                  stream: IO[str] | None = None) -> logging.Handler:
    """Send the notifier's logs (and its libraries') to ``stream``, redacted; idempotent."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactionFilter(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_notifier", False)]:
        root.removeHandler(old)
    handler._notifier = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    _quiet(("aiohttp.access",), logging.WARNING)
    return handler


def current_settings() -> tuple[str, str]:
    """The level and format ``setup_logging`` set last (for child processes to follow)."""
    root = logging.getLogger()
    json_out = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers
                   if getattr(h, "_notifier", False))
    return logging.getLevelName(root.level), "json" if json_out else "text"


def _quiet(names: Iterable[str], level: int) -> None:
    for name in names:
        logging.getLogger(name).setLevel(level)
