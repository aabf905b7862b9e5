"""One room's loop: follow the cursor, match each page, commit it with its events.

Robust to every reading of the API's open questions (``notifier.testing.emulator`` serves
each reading, and the tests run the tailer against each):

* ``startCursor`` inclusive or exclusive: after the last page the next cursor is the id
  of the last message processed, so either reading resumes at or after it; a message
  returned twice is deduped by the store's ledger (message id + ``editedAt``).
* ``nextCursor`` empty at the end, or empty with ``hasMore`` (malformed): fall back to the
  last message's id.
* A cursor Roomlio no longer knows (400): resume with ``since`` = the newest ``createdAt``
  processed; overlap is deduped.
* Edits: every ``edit_scan_interval`` the window ``since = now - edit_lookback`` is re-read
  and each edited version that matches becomes a ``message.edited`` event. A scan that
  reads the room to its end and finds nothing after the last message processed has read
  what a poll would have (``caught_up``): it stands for the room's poll. A room whose
  newest message is older than the window has nothing there to edit: no scan is sent.

* A message that cannot be processed (no id, a createdAt that is no time, a field of the
  wrong type) is quarantined, and the rest of its page is processed: one bad message costs
  that message, kept for ``notifier quarantine``, not its room.

A page, its quarantined messages and the cursor move it causes are committed in one store
transaction, so a crash between fetch and commit re-reads the page, never skips it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from notifier.config import Room, RoomlioSettings
from notifier.errors import RoomlioCursorError, RoomlioTransientError
from notifier.events import CREATED, EDITED, Delivery, EventKind, is_edited
from notifier.polling.client import Page, RoomlioClient
from notifier.polling.commit import (
    HandOff,
    Reserved,
    Routes,
    commit_page,
    deliveries_for,
    page_deliveries,
    routes_for,
)
from notifier.polling.pages import without_id
from notifier.polling.pagesize import PageBudget, PollTurns, sized_page
from notifier.polling.position import (
    CLOCK_SKEW,
    FAR_FUTURE,
    advance,
    ahead,
    created_at,
    initial_state,
    reads_like_a_poll,
    where,
    window_holds,
)
from notifier.polling.quarantine import keep
from notifier.rules import Matcher
from notifier.store import RoomState, Store
from notifier.util import tracing
from notifier.util.shown import shown
from notifier.util.time import format_time, parse_time

# HandOff, Reserved, Routes, deliveries_for and routes_for live in polling.commit; named
# here too, where the service, the CLI and the tests have always imported them from
__all__ = ["HandOff", "Reserved", "Routes", "Tailer", "deliveries_for", "routes_for"]

log = logging.getLogger("notifier.tailer")

class Tailer:
    """Tails one room; ``poll`` and ``scan_edits`` are single passes, awaited by the service."""

    # one Tailer per room, 100,000 rooms in a process: slots keep each a few hundred bytes
    __slots__ = ("_budget", "_client", "_clock", "_handoff", "_matcher", "_names",
                 "_on_enqueued", "_on_quarantined", "_routes", "_settings", "_state", "_store",
                 "caught_up", "fresh", "requests", "room")

    def __init__(self, room: Room, *, client: RoomlioClient, store: Store, matcher: Matcher,
                 routes: Routes, settings: RoomlioSettings,
                 on_enqueued: Callable[[list[Delivery]], None],
                 on_quarantined: Callable[[str, int], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 handoff: HandOff[Any] | None = None, budget: PageBudget | None = None) -> None:
        self.room = room
        self._client, self._store, self._matcher = client, store, matcher
        self._routes, self._settings = routes, settings
        self._on_enqueued = on_enqueued
        """Told of every delivery a page added (metrics, the status page)."""
        self._handoff = handoff
        """Takes committed deliveries straight to the sender (None: they wait in the
        outbox for a claim)."""
        self._on_quarantined = on_quarantined
        """Told (room, how many) when defective messages of a page were newly quarantined."""
        self._clock = clock
        self._budget = PageBudget() if budget is None else budget
        """The big-page turns this room's polls share with the process's other rooms."""
        self._names = tuple(n for n in (room.id, room.key) if n)  # a frozenset: 4 times larger
        self._state: RoomState | None = None
        self.fresh = 0
        """Messages the last ``poll`` read for the first time (adaptive polling's signal)."""
        self.caught_up = False
        """Whether the last ``scan_edits`` read the room to its end and found nothing after
        the last message processed: then it read what a poll would, and stands for one."""
        self.requests = 0
        """RoomHistory requests the last ``poll`` or ``scan_edits`` sent (metrics, by kind)."""

    @property
    def state(self) -> RoomState | None:
        """Where the tail stands (None before the first poll loaded it)."""
        return self._state

    def use_rules(self, matcher: Matcher, routes: Routes) -> None:
        """Match from the next message on with these (a config reload); a page being
        committed is matched by one set only, as matching a page never awaits."""
        self._matcher, self._routes = matcher, routes

    async def poll(self) -> int:
        """Read the pages past the cursor and commit each; return messages read.

        While a page commits, the next one (its cursor is known before the commit) is
        already asked for: at most one page ahead, committed only after the one before it
        was; a failed commit drops the page read ahead, and the next poll reads it again.
        A poll ends at the last page, at a cursor already asked for in this poll (a
        ``nextCursor`` that loops), or after ``max_pages_per_poll`` pages; the last two
        say so, and the room's next poll goes on from the saved cursor."""
        state = await self._load()
        seen = self.fresh = self.requests = 0
        asked: set[str] = set()
        pending: asyncio.Task[Page | None] | None = None
        turns = self._budget.turns(self._settings.page_size)
        try:
            for left in range(self._settings.max_pages_per_poll, 0, -1):
                if pending is None:
                    page = await self._ask(state, asked, turns)
                else:
                    page, pending = await pending, None
                if page is None:  # the cursor was lost: the next request resumes by time
                    state = replace(state, cursor=None)
                    continue
                new_state, fresh = self._take(state, page)
                repeats = (new_state.cursor or "") in asked
                if page.has_more and not repeats and left > 1:
                    pending = asyncio.ensure_future(self._ask(new_state, asked, turns))
                    pending.add_done_callback(_retrieve)
                await self._commit(new_state, replace(page, messages=fresh), CREATED,
                                   where(state))
                self._state = state = new_state
                seen += len(page.messages)
                self.fresh += len(fresh)
                if not page.has_more:
                    return seen
                if repeats:
                    self._cut_short(f"Roomlio's nextCursor {shown(state.cursor or '', 80)} "
                                    "repeats within one poll (hasMore, no way forward)")
                    return seen
        finally:
            if pending is not None:  # the commit failed, or a shutdown cancelled the poll
                pending.cancel()
                await asyncio.wait([pending])
            turns.release()
            self.requests = turns.requests
        self._cut_short(f"still more after {self._settings.max_pages_per_poll} pages "
                        "(roomlio.max_pages_per_poll)")
        return seen

    def _take(self, state: RoomState,
              page: Page) -> tuple[RoomState, tuple[Mapping[str, Any], ...]]:
        """Where ``page`` moves the tail from ``state``, and its messages new to it."""
        now = self._clock()
        # The message the last page ended on comes back first under the inclusive
        # reading; it was processed then, so a new version of it is an edit, for
        # scan_edits to find, not a new message.
        fresh = without_id(page.messages, state.last_id)
        self._warn_ahead(fresh, now, page.newest)
        return advance(state, page, now=now), fresh

    async def _ask(self, state: RoomState, asked: set[str], turns: PollTurns) -> Page | None:
        """The page after ``state``, its cursor noted as asked for in this poll; None when
        Roomlio no longer knows the cursor."""
        asked.add(state.cursor or "")
        try:
            return await sized_page(self._client, self.room, turns, state.cursor,
                                    None if state.cursor else self._resume_point(state))
        except RoomlioCursorError:
            log.warning("room %s: Roomlio no longer knows cursor %s; resuming from %s",
                        self.room.name, shown(state.cursor or "", 80),
                        state.high_water or "start_from")
            return None

    def _resume_point(self, state: RoomState) -> str | None:
        """``since`` for a tail without a cursor: the saved resume point, unless it lies
        ahead of the clock (an older version saved year 9999 there): then the edit window."""
        saved = parse_time(state.high_water) if state.high_water else None
        now = self._clock()
        if saved is None or saved.timestamp() <= now + CLOCK_SKEW:
            return state.high_water
        since = format_time(now - max(self._settings.edit_lookback, CLOCK_SKEW))
        log.warning("room %s: the saved resume point %s is ahead of this host's clock; "
                    "resuming from %s instead", self.room.name, state.high_water, since,
                    extra={"room": self.room.name})
        return since

    def _warn_ahead(self, messages: Sequence[Mapping[str, Any]], now: float,
                    newest: datetime | None) -> None:
        future = ahead(messages, now, newest)
        if future:
            log.warning("room %s: %d message(s) dated ahead of this host's clock (first: %s "
                        "at %s); delivered, but not used as the resume point; check the "
                        "clocks if this repeats", self.room.name, len(future),
                        shown(str(future[0]["id"]), 80), shown(str(future[0]["createdAt"]), 40),
                        extra={"room": self.room.name})

    def _cut_short(self, why: str) -> None:
        log.warning("room %s: %s; this poll ends here, the room is polled again at its "
                    "pace from the saved cursor", self.room.name, why,
                    extra={"room": self.room.name})

    async def scan_edits(self) -> int:
        """Re-read the edit window; commit an event for each new matching edited version
        (at most ``max_pages_per_poll`` pages, and never a cursor twice). Sets
        ``caught_up``; sends nothing when the window holds no message processed."""
        state = await self._load()
        self.caught_up, self.requests = False, 0
        since_at = self._clock() - self._settings.edit_lookback
        if self._settings.edit_lookback <= 0 or not window_holds(state, since_at):
            return 0
        turns = self._budget.turns(self._settings.page_size)
        try:
            return await self._scan(state, format_time(since_at), turns)
        finally:
            turns.release()
            self.requests = turns.requests

    async def _scan(self, state: RoomState, since: str, turns: PollTurns) -> int:
        """``scan_edits``' pages, from the first after ``since``."""
        horizon = parse_time(state.high_water or "") or FAR_FUTURE
        cursor: str | None = None
        asked: set[str] = set()
        seen, last = 0, ""
        for _ in range(self._settings.max_pages_per_poll):
            asked.add(cursor or "")
            page = await self._scan_page(cursor, since, turns)
            if page is None:  # the cursor was lost: the window is read again
                cursor = None
                continue
            edited = [m for m in page.messages if is_edited(m) and created_at(m) <= horizon]
            if edited or page.defects:
                await self._commit(None, Page(tuple(edited), False, "", page.defects), EDITED,
                                   f"edit scan {where(RoomState('', cursor, None, since))}")
            seen += len(page.messages)
            last = page.last_id or (str(page.messages[-1]["id"]) if page.messages else last)
            if not page.has_more:
                self.caught_up = reads_like_a_poll(state, last)
                if self.caught_up:
                    self.fresh = 0
                return seen
            cursor = page.next_cursor or (page.messages[-1]["id"] if page.messages else "")
            if not cursor:
                raise RoomlioTransientError("edit scan: hasMore without a usable nextCursor")
            if cursor in asked:
                self._cut_short(f"edit scan: nextCursor {shown(cursor, 80)} repeats")
                return seen
        self._cut_short(f"edit scan: still more after {self._settings.max_pages_per_poll} "
                        "pages (roomlio.max_pages_per_poll)")
        return seen

    async def _scan_page(self, cursor: str | None, since: str,
                         turns: PollTurns) -> Page | None:
        """An edit scan's page after ``cursor`` (the window's first by ``since``); None when
        Roomlio no longer knows the cursor. As for a poll, that is not a failure that backs
        the room off: the window is read again, and the ledger drops what this scan
        committed already."""
        try:
            return await sized_page(self._client, self.room, turns, cursor,
                                    None if cursor else since)
        except RoomlioCursorError:
            log.warning("room %s: edit scan: Roomlio no longer knows cursor %s; reading the "
                        "window again", self.room.name, shown(cursor or "", 80))
            return None

    async def _load(self) -> RoomState:
        if self._state is None:
            saved = await self._store.load_room(self.room.name)
            if saved is None:
                saved = initial_state(self.room.name, self._settings.start_from,
                                      self._clock())
                await self._store.commit(saved, [])
            self._state = saved
        return self._state

    async def _commit(self, state: RoomState | None, page: Page, kind: EventKind,
                      where: str) -> None:
        """Commit the page's deliveries, its defective messages (quarantined) and ``state``
        in one transaction; ``where`` says how the page was asked for."""
        now = self._clock()
        deliveries = page_deliveries(page.messages, kind, self.room.name, self._names,
                                     self._matcher, self._routes, now)
        if (state is None or state == self._state) and not deliveries and not page.defects:
            return  # nothing to save: a quiet room's poll costs no transaction
        kept = keep(self.room.name, page.defects, where, now)
        with tracing.commit(self.room.name) as span:
            added, new = await commit_page(self._store, self._handoff, state,
                                           deliveries, kept)
            span.committed(added, new)
        if added:
            self._on_enqueued(added)
        if new:
            log.warning("room %s: %d message(s) quarantined (%s: %s); the tail goes on, see "
                        "`notifier quarantine list`", self.room.name, new, kept[0].position,
                        kept[0].reason, extra={"room": self.room.name})
            if self._on_quarantined is not None:
                self._on_quarantined(self.room.name, new)


def _retrieve(task: asyncio.Task[Page | None]) -> None:
    """Marks a read-ahead's error seen: dropped with its page, it is not logged."""
    if not task.cancelled():
        task.exception()
