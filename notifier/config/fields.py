"""Typed reads out of a parsed config: every mistake becomes a Problem, never an exception.

A converter is a pure function ``(value, shown) -> T`` that raises Invalid with a message
naming the fix; ``shown`` is how the value may appear in that message (never a secret).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from notifier.config.yaml import Doc, Path, render_path
from notifier.errors import Problem

__all__ = [
    "MISSING",
    "Conv",
    "Invalid",
    "Reader",
    "boolean",
    "choice",
    "describe",
    "describe_type",
    "duration",
    "http_url",
    "integer",
    "is_hidden",
    "listing",
    "parse_duration",
    "text",
]

T = TypeVar("T")
D = TypeVar("D")
Conv = Callable[[Any, str], T]

MISSING: Final[Any] = object()
"""What ``mapping.get(key, MISSING)`` gives for an absent key (None means ``key:``)."""

_HIDDEN = "the value"
_DURATION = re.compile(r"([-+]?)(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_DURATION_HINT = "a duration like 250ms, 5s, 10m, 1h or a number of seconds"


class Invalid(ValueError):
    """A value is wrong; the message says how to fix it."""


def describe(value: Any) -> str:
    """A short, quoted rendering of a non-secret value for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return describe_type(value)


def describe_type(value: Any) -> str:
    """What kind of value this is, without its content."""
    kinds = [(bool, "a boolean"), (int | float, "a number"), (str, "a string"),
             (dict, "a mapping"), (list, "a list"), (bytes, "binary data")]
    if value is None or value == "":
        return "an empty value"
    return next((name for kind, name in kinds if isinstance(value, kind)), "an unusable value")


def is_hidden(shown: str) -> bool:
    """Whether ``shown`` stands in for a value that must not be echoed."""
    return shown.startswith(_HIDDEN)


def listing(names: Iterable[str], limit: int = 10) -> str:
    """``a, b, c`` (at most ``limit`` names, then ``...``)."""
    names = list(names)
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def unknown_key(key: str, known: Sequence[str]) -> str:
    """The message for a key the schema does not know, with the nearest known one."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key {describe(key)}{hint} (known: {', '.join(known)})"


def text(value: Any, shown: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str):
        quote = "; put it in quotes" if isinstance(value, int | float) else ""
        raise Invalid(f"must be a string (got {shown}){quote}")
    if not value.strip():
        raise Invalid(f"must not be empty (got {shown})")
    return value


def integer(low: int, high: int | None = None) -> Conv[int]:
    """A whole number in ``low..high`` (digits in a string count, for ${VAR} values)."""
    bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def convert(value: Any, shown: str) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"must be a whole number {bounds} (got {shown})")
        if value < low or (high is not None and value > high):
            raise Invalid(f"must be {bounds} (got {shown})")
        return value

    convert.__doc__ = f"A whole number {bounds}."  # what docs/settings.md says it takes
    return convert


def boolean(value: Any, shown: str) -> bool:
    """true or false.

    The strings ``"true"`` and ``"false"`` count too, for ${VAR} values.
    """
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false (got {shown})")
    return value


def parse_duration(value: Any) -> float:
    """Seconds in ``value``: a number, or text like ``250ms``, ``1.5s``, ``10m``, ``1h``, ``1d``."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise ValueError(value)
        sign = -1.0 if match[1] == "-" else 1.0
        seconds = sign * float(match[2]) * _UNIT_SECONDS[match[3]]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError(value) from None
    else:
        raise ValueError(value)
    if not math.isfinite(seconds):
        raise ValueError(value)
    return seconds


def duration(*, allow_zero: bool = False) -> Conv[float]:
    """A duration in seconds, greater than 0 (or at least 0 with ``allow_zero``)."""

    def convert(value: Any, shown: str) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise Invalid(f"must be {_DURATION_HINT} (got {shown})") from None
        if seconds < 0 or (seconds == 0 and not allow_zero):
            raise Invalid(f"must be {floor} (got {shown})")
        return seconds

    floor = "0 or more" if allow_zero else "greater than 0"
    convert.__doc__ = f"A duration {floor}."
    return convert


def http_url(value: Any, shown: str) -> str:
    """An http:// or https:// URL.

    It must name a host; messages never echo it (it may hold a token).
    """
    if not isinstance(value, str):
        raise Invalid(f"must be an http:// or https:// URL (got {shown})")
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise Invalid("is not a valid URL (check the port and any [IPv6] brackets)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        got = f" (got scheme '{scheme}')" if scheme and not is_hidden(shown) else ""
        raise Invalid(f"must be an http:// or https:// URL{got}")
    if not parts.hostname:
        raise Invalid(f"must name a host, like {scheme}://example.com/path")
    if any(c.isspace() for c in url):
        raise Invalid("must not contain spaces; percent-encode them as %20")
    return url


def choice(allowed: Iterable[str], noun: str, label: str = "choose from",
           display: Iterable[str] | None = None) -> Conv[str]:
    """One of ``allowed``; the message lists them (or ``display``) in the order given."""
    options = list(allowed)
    shown_options = list(display) if display is not None else options

    def convert(value: Any, shown: str) -> str:
        if not isinstance(value, str):
            raise Invalid(f"must be a string naming a {noun} (got {shown})")
        if value not in options:
            raise Invalid(f"unknown {noun} {shown} ({label}: {listing(shown_options)})")
        return value

    convert.__doc__ = f"One of {listing(shown_options)}."
    return convert


class Reader:
    """Reads typed values out of a Doc, recording one Problem per mistake."""

    def __init__(self, doc: Doc, file: str, secret: Callable[[Path], bool]) -> None:
        self.doc, self.file, self._secret = doc, file, secret
        self.problems: list[Problem] = []

    def problem(self, path: Path, message: str, *, at: Path | None = None) -> None:
        """Record ``message`` about ``path``, located at ``at`` (default: the path itself)."""
        line = self.doc.line(at if at is not None else path)
        self.problems.append(Problem(self.file, line, render_path(path), message))

    def show(self, value: Any, path: Path) -> str:
        """How the value at ``path`` may appear in a message."""
        names = self.doc.sources.get(path)
        if names:
            return f"{_HIDDEN} from " + ", ".join(f"${{{name}}}" for name in names)
        if self._secret(path):
            return _HIDDEN if value and isinstance(value, str) else describe_type(value)
        return describe(value)

    def mapping(self, value: Any, path: Path, known: Sequence[str] | None = None,
                required: Sequence[str] = ()) -> dict[str, Any] | None:
        """``value`` as a mapping, reporting unknown and missing keys; None if it is not one."""
        if value is MISSING:
            return None
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping (got {self.show(value, path)})")
            return None
        for key in value:
            if known is not None and key not in known:
                self.problem((*path, key), unknown_key(key, known))
        for key in required:
            if key not in value:
                self.problem((*path, key), "is required")
        return value

    def sequence(self, value: Any, path: Path) -> list[Any]:
        """``value`` as a non-empty list (empty when absent or wrong)."""
        if value is MISSING:
            return []
        if not isinstance(value, list):
            self.problem(path, f"must be a list (got {self.show(value, path)})")
            return []
        if not value:
            self.problem(path, "must not be empty")
        return value

    def value(self, m: dict[str, Any], path: Path, key: str, conv: Conv[T], default: D) -> T | D:
        """``m[key]`` through ``conv``, or ``default`` when absent or wrong."""
        if key not in m or (*path, key) in self.doc.broken:
            return default
        try:
            return conv(m[key], self.show(m[key], (*path, key)))
        except Invalid as exc:
            self.problem((*path, key), str(exc))
            return default

    def values(self, m: dict[str, Any], path: Path, key: str,
               conv: Conv[T]) -> tuple[T, ...] | None:
        """``m[key]`` as one string or a list of values through ``conv``; None when absent."""
        if key not in m:
            return None
        where, raw = (*path, key), m[key]
        items, paths = ([raw], [where]) if isinstance(raw, str) else (raw, None)
        if not isinstance(items, list):
            self.problem(where, f"must be a string or a list (got {self.show(raw, where)})")
            return ()
        if not items:
            self.problem(where, "must not be empty; remove the key or list at least one value")
        out = []
        for i, item in enumerate(items):
            at = paths[0] if paths else (*where, i)
            if at in self.doc.broken:
                continue
            try:
                out.append(conv(item, self.show(item, at)))
            except Invalid as exc:
                self.problem(where, str(exc), at=at)
        return tuple(out)

    def fields(self, m: dict[str, Any], path: Path, table: dict[str, Conv[Any]]) -> dict[str, Any]:
        """Every key of ``table`` present in ``m``, converted (None where wrong)."""
        return {key: self.value(m, path, key, conv, None) for key, conv in table.items()
                if key in m}
