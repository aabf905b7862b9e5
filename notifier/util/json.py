"""Compact JSON with ``orjson`` when installed (a dependency on CPython), else ``json``.

Both write compact UTF-8 without ``\\u`` escapes for non-ASCII, the same bytes except
that a float may be spelt differently (``1e-05`` or ``0.00001``), and read the same
values; what ``orjson`` refuses (an integer beyond 64 bits, a lone surrogate, a type it
does not know) falls back to the standard library, which decides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

try:
    import orjson
except ImportError:  # optional: only faster
    orjson = None  # type: ignore[assignment]

__all__ = ["dumps", "dumps_bytes", "loads", "loads_utf8"]

#: Every ASCII digit to 0, every other byte to a space: a run of 19 digits becomes _LONG.
_DIGITS_ONLY = bytes(c if 0x30 <= c <= 0x39 else 0x20 for c in range(256)).replace(
    b"123456789", b"000000000")
_LONG = b"0" * 19
#: Four digits in a row among every fourth byte: what any run of 19 digits holds.
_SAMPLED = b"0" * 4


def _has_long_number(text: str | bytes) -> bool:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    # Any 19 positions in a row hold 4 in a row of each remainder modulo 4, so every
    # fourth byte is searched first (a byte-by-byte translation is the cost here), the
    # fourth bytes two further on only when 4 of those in a row are digits (a timestamp's
    # never are; an id's may be, but seldom in both), and the whole text only after both.
    # find, not `in`: bytes.__contains__ first tries its operand as an integer, and the
    # TypeError it raises and clears costs more than the search in a short document
    return (raw[::4].translate(_DIGITS_ONLY).find(_SAMPLED) >= 0
            and raw[2::4].translate(_DIGITS_ONLY).find(_SAMPLED) >= 0
            and raw.translate(_DIGITS_ONLY).find(_LONG) >= 0)


def _default(obj: object) -> object:
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps_bytes(obj: object) -> bytes:
    """Compact UTF-8 JSON for ``obj`` (mappings of any kind become objects)."""
    if orjson is not None:
        try:
            return orjson.dumps(obj, default=_default)
        except TypeError:
            pass  # e.g. an integer beyond 64 bits: the standard library copes
    return json.dumps(obj, default=_default, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()


def dumps(obj: object) -> str:
    """``dumps_bytes`` as text."""
    return dumps_bytes(obj).decode()


def loads(text: str | bytes) -> Any:
    """The value of a JSON document; what ``orjson`` refuses (an integer beyond 64 bits,
    ``NaN``, a lone surrogate escape, deep nesting) the standard library decides, so the
    result and the errors (ValueError, RecursionError) are the standard library's. A run
    of 19 digits anywhere goes to the standard library at once: orjson would read an
    integer beyond 64 bits as a float, silently."""
    value = _read_fast(text)
    return json.loads(text) if value is _REFUSED else value


_REFUSED = object()


def _read_fast(text: str | bytes) -> Any:
    """The document's value as orjson reads it, or _REFUSED: the standard library must."""
    if orjson is not None and not _has_long_number(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return _REFUSED


#: A JSON escape of a UTF-16 surrogate: the only way a lone one can get into a string.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def loads_utf8(raw: bytes) -> Any:
    """``loads``, with every lone surrogate (a valid JSON escape, but no UTF-8 can carry
    it to a store or a webhook) replaced by U+FFFD, as Go's JSON decoder does. orjson
    refuses a lone surrogate escape, so only a document the standard library decided can
    hold one: one that orjson read is returned as it is, unsearched."""
    value = _read_fast(raw)
    if value is not _REFUSED:
        return value
    value = json.loads(raw)
    return _scrub_surrogates(value) if _SURROGATE_ESCAPE.search(raw) else value


def _scrub_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_scrub_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_scrub_surrogates(k): _scrub_surrogates(v) for k, v in value.items()}
    return value
