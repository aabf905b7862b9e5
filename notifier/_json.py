"""Compact JSON encoding with ``orjson`` when installed (the ``fast`` extra), else ``json``.

Both produce the same bytes for the documents we write (compact separators, UTF-8, no
``\\u`` escapes for non-ASCII); what ``orjson`` refuses (an integer beyond 64 bits, a
lone surrogate, a type it does not know) falls back to the standard library, which
decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

try:
    import orjson
except ImportError:  # optional: only faster
    orjson = None  # type: ignore[assignment]

__all__ = ["dumps", "dumps_bytes", "loads"]


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
    """The value ``dumps`` or ``dumps_bytes`` wrote."""
    return orjson.loads(text) if orjson is not None else json.loads(text)
