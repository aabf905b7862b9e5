"""Faults to inject into the emulator and the receiver, and the queue that hands them out.

A fault is a value (``Fault.status(503, retry_after=1)``, ``Fault.delay(2)``,
``Fault.RESET`` …); ``inject`` queues it for the next matching requests, each of which
consumes one use. The emulator understands every kind; the receiver understands
``status``, ``delay`` and ``reset`` (alias ``DROP``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = ["MALFORMED_VARIANTS", "Fault", "FaultKind", "FaultQueue"]

FaultKind = Literal[
    "status",
    "delay",
    "reset",
    "truncated",
    "malformed",
    "has_more_empty_cursor",
    "duplicate",
    "reorder",
    "overlap",
    "huge",
    "cursor_loop",
]

#: ``Fault.malformed`` variants: what is wrong with the 200 answer.
MALFORMED_VARIANTS = (
    "missing_id",  # a broken copy of a message, without "id", heads the page
    "wrong_type",  # the same, and its "createdAt" is a number
    "messages_not_list",  # "messages" is an object
    "not_object",  # the answer is a JSON array, not an object
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One misbehaviour, applied to one request. Build it with the class methods/constants."""

    kind: FaultKind
    code: int | None = None
    """``status``: the HTTP status to answer."""
    retry_after: float | str | None = None
    """``status``: the ``Retry-After`` header (seconds, or a verbatim string such as a date)."""
    body: Any = None
    """``status``: the answer body (dict → JSON, str/bytes verbatim; None → Roomlio-style)."""
    seconds: float = 0.0
    """``delay``: how long to wait before answering normally."""
    variant: str = ""
    """``malformed``: one of MALFORMED_VARIANTS; ``truncated``: "body" or "connection";
    ``cursor_loop``: "cycle" or "fresh"."""
    count: int = 1
    """``overlap``: how many already-delivered messages to resend."""
    size: int = 0
    """``huge``: the answer is larger than this many bytes."""
    chunked: bool = False
    """``huge``: send without Content-Length, so the client must count while reading."""
    shuffle: bool = False
    """``duplicate``: also return the page out of order."""

    RESET: ClassVar[Fault]
    DROP: ClassVar[Fault]
    TRUNCATED: ClassVar[Fault]
    MALFORMED_MESSAGE: ClassVar[Fault]
    HAS_MORE_EMPTY_CURSOR: ClassVar[Fault]
    DUPLICATE: ClassVar[Fault]
    REORDER: ClassVar[Fault]
    OVERLAP: ClassVar[Fault]
    HUGE: ClassVar[Fault]

    def retry_after_header(self) -> str | None:
        """The ``Retry-After`` header value, or None to send none."""
        if self.retry_after is None:
            return None
        if isinstance(self.retry_after, float) and self.retry_after.is_integer():
            return str(int(self.retry_after))
        return str(self.retry_after)

    @classmethod
    def status(cls, code: int, retry_after: float | str | None = None,
               body: Any = None) -> Fault:
        """Answer ``code`` (e.g. 429, 503) instead of the real answer."""
        if not 100 <= code <= 599:
            raise ValueError(f"status code must be 100..599, not {code}")
        return cls("status", code=code, retry_after=retry_after, body=body)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds``, then answer normally (to push a client past its timeout)."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0 seconds, not {seconds}")
        return cls("delay", seconds=seconds)

    @classmethod
    def truncated(cls, *, cut_connection: bool = False) -> Fault:
        """A 200 whose JSON stops halfway.

        By default the Content-Length matches the cut body, so the client reads it whole
        and fails to parse it; with ``cut_connection`` the header promises the full body
        and the connection closes early (aiohttp raises ClientPayloadError).
        """
        return cls("truncated", variant="connection" if cut_connection else "body")

    @classmethod
    def malformed(cls, variant: str = "missing_id") -> Fault:
        """A 200 page that breaks the schema in the way ``variant`` names."""
        if variant not in MALFORMED_VARIANTS:
            raise ValueError(f"unknown malformed variant {variant!r} (known: "
                             f"{', '.join(MALFORMED_VARIANTS)})")
        return cls("malformed", variant=variant)

    @classmethod
    def duplicate(cls, *, shuffle: bool = False) -> Fault:
        """The page carries every message twice (and, with ``shuffle``, in reverse order)."""
        return cls("duplicate", shuffle=shuffle)

    @classmethod
    def overlap(cls, count: int = 1) -> Fault:
        """The page starts ``count`` messages early, resending messages already delivered."""
        if count < 1:
            raise ValueError(f"overlap count must be >= 1, not {count}")
        return cls("overlap", count=count)

    @classmethod
    def huge(cls, size: int = 5_000_000, *, chunked: bool = False) -> Fault:
        """A valid 200 answer padded to more than ``size`` bytes."""
        if size < 1:
            raise ValueError(f"huge size must be >= 1 byte, not {size}")
        return cls("huge", size=size, chunked=chunked)

    @classmethod
    def cursor_loop(cls, *, fresh: bool = False) -> Fault:
        """An empty page that says ``hasMore`` with a ``nextCursor`` leading nowhere: two
        cursors that point at each other, or (``fresh``) a new cursor every time."""
        return cls("cursor_loop", variant="fresh" if fresh else "cycle")


Fault.RESET = Fault("reset")
Fault.DROP = Fault.RESET
Fault.TRUNCATED = Fault.truncated()
Fault.MALFORMED_MESSAGE = Fault.malformed()
Fault.HAS_MORE_EMPTY_CURSOR = Fault("has_more_empty_cursor")
Fault.DUPLICATE = Fault.duplicate()
Fault.REORDER = Fault("reorder")
Fault.OVERLAP = Fault.overlap()
Fault.HUGE = Fault.huge()


@dataclass(slots=True)
class _Pending:
    fault: Fault
    target: str | None
    remaining: int


class FaultQueue:
    """Faults waiting for requests, first in first out; each request consumes one use."""

    def __init__(self, supported: frozenset[str] | None = None) -> None:
        self._pending: list[_Pending] = []
        self._supported = supported

    def add(self, fault: Fault, target: str | None, times: int) -> None:
        """Queue ``fault`` for the next ``times`` requests aimed at ``target`` (None: any)."""
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {fault!r}")
        if self._supported is not None and fault.kind not in self._supported:
            raise ValueError(f"fault {fault.kind!r} is not supported here (supported: "
                             f"{', '.join(sorted(self._supported))})")
        if times < 1:
            raise ValueError(f"times must be >= 1, not {times}")
        self._pending.append(_Pending(fault, target, times))

    def take(self, *targets: str | None) -> Fault | None:
        """Consume and return the first fault aimed at any of ``targets`` or at no target."""
        for i, pending in enumerate(self._pending):
            if pending.target is None or pending.target in targets:
                pending.remaining -= 1
                if pending.remaining == 0:
                    del self._pending[i]
                return pending.fault
        return None

    def clear(self) -> None:
        """Forget every queued fault."""
        self._pending.clear()

    def __len__(self) -> int:
        return sum(p.remaining for p in self._pending)
