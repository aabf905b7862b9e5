"""The webhook keys that depend on its ``format``, read generically; formats check them.

Config knows no format by name. The loader is given the formats (``notifier check``,
``run``, reload and the worker pass ``notifier.delivery.formats.FORMATS``), each seen
here through the small ``FormatRules`` protocol: its name, default rate, whether it is
signed or groupable, the extra keys it reads, and ``validate``. This module reads what
every format shares (``rate_limit``, ``group_wait``, a ``secret`` on an unsigned format,
a key that belongs to another format) and hands the rest to the format's ``validate``
through ``FormatOptions``: the webhook's keys with their YAML locations, so its problems
carry the same file:line as every other one. A template that cannot compile is thus a
``notifier check`` problem naming the webhook and the line, never a surprise at the
first matching message, and ``config`` imports nothing from ``delivery``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from notifier.config.fields import Conv, Invalid, Reader, duration, text
from notifier.config.model import MAX_CONFIG_BYTES, Rate
from notifier.config.yaml import Path

__all__ = ["COMMON_KEYS", "FormatOptions", "FormatRules", "format_keys", "format_settings",
           "rate"]

COMMON_KEYS = ("rate_limit", "group_wait")
"""The format keys every format reads (the others belong to one format: ``options``)."""

T = TypeVar("T")
D = TypeVar("D")

_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")
_PER_UNIT = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_UNLIMITED = ("none", "unlimited", "off")


def rate(value: Any, shown: str) -> Rate | None:
    """``4/s``, ``100/m``, ``1/2s`` or ``none``: a Rate, or None for unlimited."""
    hint = f"must be a rate like 1/s, 4/s, 100/m or 10/30s, or none (got {shown})"
    if isinstance(value, str) and value.strip().lower() in _UNLIMITED:
        return None
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid(hint)
    count, unit = int(match[1]), match[2].lower()
    per = _PER_UNIT.get(unit)
    if per is None:
        try:
            per = duration()(unit, shown)
        except Invalid:
            raise Invalid(hint) from None
    if count < 1:
        raise Invalid(f"must allow at least 1 request (got {shown}); use none for no limit")
    return Rate(count, per)


@dataclass(frozen=True)
class FormatOptions:
    """One webhook's keys as its format sees them: values, YAML locations, problems."""

    reader: Reader
    mapping: dict[str, Any]
    path: Path
    """Where the webhook is in the file (``("webhooks", name)``)."""
    format: str

    def given(self, key: str) -> bool:
        """Whether the webhook sets ``key``."""
        return key in self.mapping

    def value(self, key: str, conv: Conv[T], default: D) -> T | D:
        """``key`` through ``conv``, or ``default`` when absent or wrong (a problem then)."""
        return self.reader.value(self.mapping, self.path, key, conv, default)

    def label(self, key: str) -> str:
        """The key's dotted place, like ``webhooks.crm.template`` (messages use it)."""
        return ".".join(map(str, (*self.path, key)))

    def problem(self, key: str | None, message: str, *, at: str | None = None) -> None:
        """A problem about ``key`` (None: the webhook), located at key ``at`` if given."""
        where: Path = self.path if key is None else (*self.path, key)
        self.reader.problem(where, message, at=None if at is None else (*self.path, at))

    def read_file(self, key: str) -> tuple[str, str] | None:
        """The text of the file named by ``key`` (relative to the config file) and its
        name as written; None, with a problem, when it cannot be read or is too big."""
        file = self.value(key, text, None)
        if file is None:
            return None
        base = os.path.dirname(os.path.abspath(self.reader.file))
        full = os.path.join(base, os.path.expanduser(file))
        try:
            with open(full, encoding="utf-8") as handle:
                source = handle.read(MAX_CONFIG_BYTES + 1)
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self.problem(key, f"cannot read {file!r}: {reason}")
            return None
        if len(source) > MAX_CONFIG_BYTES:
            self.problem(key, f"{file!r} is more than {MAX_CONFIG_BYTES:,} bytes, the "
                              f"limit for a {self.format}")
            return None
        return source, file


class FormatRules(Protocol):
    """What the loader needs of a format (``notifier.delivery.formats.Format`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def default_rate(self) -> Rate | None: ...
    @property
    def signed(self) -> bool: ...
    @property
    def groupable(self) -> bool: ...
    @property
    def options(self) -> tuple[str, ...]: ...

    def validate(self, options: FormatOptions) -> dict[str, Any]:
        """The Webhook fields its own keys give; problems go through ``options``."""
        ...


def format_keys(formats: Mapping[str, FormatRules]) -> tuple[str, ...]:
    """Every format key a webhook may set: the common ones, then each format's own."""
    own = [key for rules in formats.values() for key in rules.options]
    return (*COMMON_KEYS, *dict.fromkeys(own))


def format_settings(r: Reader, m: dict[str, Any], path: Path, fmt: str,
                    formats: Mapping[str, FormatRules]) -> dict[str, Any]:
    """The Webhook fields that follow from ``format`` (a key of ``formats``) and its keys."""
    rules = formats[fmt]
    settings: dict[str, Any] = {
        "rate_limit": r.value(m, path, "rate_limit", rate, rules.default_rate),
        "group_wait": r.value(m, path, "group_wait", duration(allow_zero=True), 0.0),
    }
    if settings["group_wait"] and not rules.groupable:
        chat = ", ".join(name for name, other in formats.items() if other.groupable)
        r.problem((*path, "group_wait"), f"grouping is for chat formats ({chat}); "
                                         f"this webhook's format is {fmt}")
    if not rules.signed and "secret" in m:
        r.problem((*path, "secret"), f"format {fmt} sends no signature (the service does "
                                     "not check one); remove secret")
    for key in m:
        owner = next((name for name, other in formats.items() if key in other.options), fmt)
        if owner != fmt:
            r.problem((*path, key), f"only applies to format: {owner} (this webhook's "
                                    f"format is {fmt})")
    settings.update(rules.validate(FormatOptions(r, m, path, fmt)))
    return settings
