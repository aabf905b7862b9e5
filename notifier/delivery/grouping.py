"""Grouping for chat destinations: one rule's events in one room, within ``group_wait``,
become one message ("5 new messages in support-42 matched refunds").

The first delivery of a (rule, room) pair opens a group and starts its window; the
deliveries that arrive before the window ends join it. When it ends, the group is sent
as one ``GroupDelivery``: a Delivery whose ``members`` are the outbox rows it stands
for. ``GroupedStore`` lets the sender treat it like any delivery: marking the group
delivered, rescheduled or dead-lettered does so for every member, so the outbox stays
the truth (a crash re-sends the members, regrouped after the restart).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from notifier.events import Delivery
from notifier.store import Store

__all__ = ["GroupBuffer", "GroupDelivery", "GroupedStore", "Grouper", "group_of", "members_of"]

GroupKey = tuple[str, str]
"""(rule, room)."""


@dataclass(frozen=True, slots=True)
class GroupDelivery(Delivery):
    """Several deliveries to one webhook, sent as one message."""

    members: tuple[Delivery, ...] = ()


def members_of(delivery: Delivery) -> tuple[Delivery, ...]:
    """The outbox deliveries that ``delivery`` stands for (itself, unless a group)."""
    return delivery.members if isinstance(delivery, GroupDelivery) else (delivery,)


def group_of(members: Sequence[Delivery]) -> Delivery:
    """One delivery for ``members`` (oldest first); a lone member is sent as itself."""
    if len(members) == 1:
        return members[0]
    first = members[0]
    digest = hashlib.sha256("\x00".join(sorted(m.id for m in members)).encode()).hexdigest()
    return GroupDelivery(f"grp_{digest[:32]}", first.webhook, first.rules, first.event,
                         attempts=max(m.attempts for m in members), members=tuple(members))


def group_key(delivery: Delivery) -> GroupKey:
    """The (rule, room) a delivery is grouped under: its first rule for this webhook."""
    return (delivery.rules[0] if delivery.rules else "", delivery.event.room)


class GroupBuffer:
    """The open groups and when each closes: pure bookkeeping, the clock passed in."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._open: dict[GroupKey, tuple[float, list[Delivery]]] = {}

    def add(self, delivery: Delivery, now: float) -> float | None:
        """Put ``delivery`` in its group; return the close time if it opened a new one."""
        key = group_key(delivery)
        if key in self._open:
            self._open[key][1].append(delivery)
            return None
        self._open[key] = (now + self.wait, [delivery])
        return now + self.wait

    def due(self, now: float) -> list[list[Delivery]]:
        """Remove and return every group whose window has ended by ``now``."""
        keys = [key for key, (closes, _) in self._open.items() if closes <= now]
        return [self._open.pop(key)[1] for key in keys]

    def __len__(self) -> int:
        return sum(len(members) for _, members in self._open.values())


class Grouper:
    """Runs a GroupBuffer on the event loop: ``send`` gets each group when it closes."""

    def __init__(self, wait: float, send: Callable[[Delivery], None]) -> None:
        self._buffer = GroupBuffer(wait)
        self._send = send
        self._timers: set[asyncio.TimerHandle] = set()

    def add(self, delivery: Delivery) -> None:
        """Hold ``delivery`` until its group's window ends."""
        loop = asyncio.get_running_loop()
        closes = self._buffer.add(delivery, loop.time())
        if closes is not None:
            timer = loop.call_at(closes, self._flush, closes)
            self._timers.add(timer)

    def _flush(self, closes: float) -> None:
        # A loop may run a timer a hair early (uvloop keeps them in whole milliseconds),
        # its clock still short of ``closes``: the deadline it was set for has come all
        # the same, or the group would find itself not due and wait with no timer left.
        now = max(asyncio.get_running_loop().time(), closes)
        self._timers = {t for t in self._timers if not t.cancelled() and t.when() > now}
        for members in self._buffer.due(now):
            self._send(group_of(members))

    def close(self) -> None:
        """Stop the windows; the deliveries still held stay in the outbox."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()


class GroupedStore:
    """A Store whose delivery-settling calls expand a group's id to its members' ids."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._groups: dict[str, tuple[str, ...]] = {}

    def track(self, delivery: Delivery) -> None:
        """Remember a group's members until it is settled."""
        if isinstance(delivery, GroupDelivery):
            self._groups[delivery.id] = tuple(m.id for m in delivery.members)

    def _ids(self, delivery_id: str) -> tuple[str, ...]:
        return self._groups.get(delivery_id, (delivery_id,))

    async def delivered(self, ids: Sequence[str]) -> None:
        if not self._groups:  # no group in flight: every id stands for itself
            await self._store.delivered(ids)
            return
        await self._store.delivered([m for i in ids for m in self._ids(i)])
        for i in ids:
            self._groups.pop(i, None)

    async def reschedule(self, delivery_id: str, attempts: int, next_attempt_at: float,
                         last_status: int | None, last_error: str) -> None:
        for member in self._ids(delivery_id):
            await self._store.reschedule(member, attempts, next_attempt_at, last_status,
                                         last_error)

    async def dead_letter(self, delivery_id: str, attempts: int, last_status: int | None,
                          last_error: str) -> None:
        for member in self._ids(delivery_id):
            await self._store.dead_letter(member, attempts, last_status, last_error)
        self._groups.pop(delivery_id, None)

    async def release(self, ids: Collection[str]) -> None:
        await self._store.release([m for i in ids for m in self._ids(i)])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
