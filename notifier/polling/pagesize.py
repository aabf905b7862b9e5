"""How many messages a RoomHistory request asks for: ``roomlio.page_size`` (by default
the API's maximum, 1,000: a backlog is read in ten times fewer requests than at the API's
default of 100, which counts against the key's rate limit), within a budget of big pages.

A decoded page is held while it is checked, committed and handed off, and a room reads one
page ahead, so a process could hold 2 × ``MAX_CONCURRENT_POLLS`` (64) pages at once. Only
``BIG_PAGES`` of them may be bigger than ``SMALL_PAGE``: a poll (or edit scan) takes two
turns (its page and the one it reads ahead) before it asks for more than ``SMALL_PAGE``
messages, and while none are free it asks for ``SMALL_PAGE``, taking them at a later page
of the same poll when they have come free. So a catch-up of many rooms holds at most
``BIG_PAGES`` × 1,000 + 2 × 64 × 100 decoded messages, whatever ``page_size`` is.

An answer over ``roomlio.max_response_bytes`` is no reason to stop a room whose pages of
fewer messages fit: ``sized_page`` asks again in a tenth of the messages, down to one.
"""

from __future__ import annotations

import logging

from notifier.config import Room
from notifier.errors import RoomlioAnswerTooLarge
from notifier.polling.client import Page, RoomlioClient

__all__ = ["BIG_PAGES", "SMALL_PAGE", "PageBudget", "PollTurns", "sized_page"]

log = logging.getLogger("notifier.tailer")

#: The most messages a request asks for without a big-page turn (the API's default limit).
SMALL_PAGE = 100
#: Big-page turns in a process: 16 rooms reading big pages at once, one page ahead each.
BIG_PAGES = 32


class PageBudget:
    """The big-page turns of one process, shared by its rooms' tailers (one event loop)."""

    __slots__ = ("free",)

    def __init__(self, turns: int = BIG_PAGES) -> None:
        self.free = turns
        """Turns no poll holds."""

    def turns(self, page_size: int) -> PollTurns:
        """One poll's (or edit scan's) claim, to ``release`` when it ends."""
        return PollTurns(self, page_size)


class PollTurns:
    """What one poll asks for: ``page_size`` while it holds two turns, else at most
    ``SMALL_PAGE``; it takes them at the first request that finds them free."""

    __slots__ = ("_budget", "_page_size", "held", "requests")

    def __init__(self, budget: PageBudget, page_size: int) -> None:
        self._budget, self._page_size = budget, page_size
        self.held = False
        """Whether this poll holds two of the budget's turns."""
        self.requests = 0
        """RoomHistory requests ``sized_page`` sent for this poll."""

    def limit(self) -> int:
        """The ``limit`` of the poll's next request."""
        if self.held or self._page_size <= SMALL_PAGE:
            return self._page_size
        if self._budget.free >= 2:
            self._budget.free -= 2
            self.held = True
            return self._page_size
        return SMALL_PAGE

    def shrink(self, limit: int) -> int:
        """An answer to a request for ``limit`` messages was too large: the rest of the
        poll asks for a tenth of that (at least one); returns the new page size."""
        self._page_size = min(self._page_size, max(1, limit // 10))
        if self._page_size <= SMALL_PAGE:
            self.release()  # small pages take no turn
        return self._page_size

    def release(self) -> None:
        """The poll has ended: its turns, if it held them, are free again."""
        if self.held:
            self.held = False
            self._budget.free += 2


async def sized_page(client: RoomlioClient, room: Room, turns: PollTurns,
                     cursor: str | None, since: str | None) -> Page:
    """The RoomHistory page at ``cursor`` (or from ``since``) at the poll's limit. An answer
    over ``max_response_bytes`` is asked for again in a tenth of the messages, as the rest
    of the poll is, down to one message a page; one message over it raises, saying which
    setting to raise."""
    while True:
        limit = turns.limit()
        turns.requests += 1
        try:
            return await client.room_history(room, limit=limit, start_cursor=cursor,
                                             since=since)
        except RoomlioAnswerTooLarge as exc:
            if limit <= 1:
                raise RoomlioAnswerTooLarge(
                    f"{exc}, with a single message: raise roomlio.max_response_bytes to read "
                    "this room") from None
            log.warning("room %s: %s at %d messages; asking for %d message(s) a page for "
                        "the rest of this poll", room.name, exc, limit, turns.shrink(limit),
                        extra={"room": room.name})
