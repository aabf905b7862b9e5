"""Roomlio-style identifiers: a prefix plus a 20-character, time-ordered "xid".

An xid is 12 bytes (4 of Unix seconds, 5 of process identity, 3 of counter), written in
lowercase base32hex, so that ids sort as text in the order they were made. The emulator
relies on that order; the notifier itself must not (the API documentation says so).
"""

from __future__ import annotations

import base64
import os
import time

__all__ = ["new_id"]

_IDENTITY = int.from_bytes(os.urandom(5), "big")
_COUNTER_MASK = (1 << 24) - 1


class _XidGenerator:
    """Strictly increasing xids, even when the clock given stands still or goes back."""

    def __init__(self) -> None:
        self._counter = int.from_bytes(os.urandom(3), "big")
        self._last = 0

    def next(self, seconds: float | None = None) -> str:
        ts = int(time.time() if seconds is None else seconds) & 0xFFFFFFFF
        self._counter = (self._counter + 1) & _COUNTER_MASK
        value = max((ts << 64) | (_IDENTITY << 24) | self._counter, self._last + 1)
        self._last = value
        # 96 bits fill 20 base32hex digits (4 zero bits to spare, then "====" padding).
        return base64.b32hexencode(value.to_bytes(12, "big"))[:20].decode().lower()


_GENERATOR = _XidGenerator()


def new_id(prefix: str, seconds: float | None = None) -> str:
    """A fresh id such as ``msg_bvr0ngdnf4q1u52mfj0g``; ``seconds`` sets its time part."""
    return prefix + _GENERATOR.next(seconds)
