"""A page's commit: its deliveries, its quarantined messages and the room's new cursor in
one store transaction, and the deliveries handed to this process's sender.

The tailer (``notifier.polling.tailer``) decides what a page is and where the tail goes
next; this module turns a matched page into rows and commits them. ``HandOff`` is the
whole seam between polling and delivery (``notifier.runtime.handoff`` implements it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from notifier.events import Delivery, Event, EventKind
from notifier.rules import Matcher
from notifier.store import Quarantined, RoomState, Store
from notifier.util.aio import finish_first

__all__ = ["HandOff", "Reserved", "Routes", "commit_page", "deliveries_for", "page_deliveries",
           "routes_for"]

#: rule name -> the webhooks it notifies
Routes = Mapping[str, Sequence[str]]


class Reserved(Protocol):
    """What a ``HandOff`` reserved for one page: the deliveries it takes."""

    @property
    def ids(self) -> Collection[str]:
        """The ids of the deliveries to commit claimed by this process."""
        ...


R = TypeVar("R", bound=Reserved)


class HandOff(Protocol[R]):
    """This process's sender, as the tailer sees it (``notifier.runtime`` wires it): it
    takes a page's deliveries the moment they are committed, instead of claiming them from
    the outbox again. Polling does not import delivery; this is the whole seam."""

    def room_for(self, deliveries: Sequence[Delivery]) -> Awaitable[None] | None:
        """What to await before ``reserve`` so that it has room for the page (None: no
        need to wait): its lanes are full, and draining. Bounded: see
        notifier.delivery.backpressure."""
        ...

    def reserve(self, deliveries: Sequence[Delivery]) -> R | None:
        """Room for the deliveries it can start at once (None: none)."""
        ...

    def adopt(self, reserved: R | None, added: Sequence[Delivery]) -> None:
        """The page is committed (``added``: the deliveries it added; empty when the commit
        failed): start the reserved ones, wake whoever claims the others."""
        ...


def routes_for(rules: Sequence[Any]) -> dict[str, tuple[str, ...]]:
    """The routing table of a config's rules."""
    return {rule.name: tuple(rule.notify) for rule in rules}


def deliveries_for(event: Event, routes: Routes) -> list[Delivery]:
    """One delivery per webhook, each listing the matched rules that notify it."""
    per_webhook: dict[str, list[str]] = {}
    for rule in event.rules:
        for webhook in routes.get(rule, ()):
            per_webhook.setdefault(webhook, []).append(rule)
    return [Delivery.for_webhook(event, w, tuple(r)) for w, r in per_webhook.items()]


def page_deliveries(messages: Sequence[Mapping[str, Any]], kind: EventKind, room: str,
                    names: Sequence[str], matcher: Matcher, routes: Routes,
                    now: float) -> list[Delivery]:
    """The deliveries of a page's messages that match (``names``: the room's id and key,
    for rules naming rooms), as ``kind`` events detected at ``now``."""
    deliveries: list[Delivery] = []
    for i, rules in matcher.match_page(messages, kind, names):
        event = Event.from_message(kind, room, messages[i], rules, now)
        deliveries.extend(deliveries_for(event, routes))
    return deliveries


async def commit_page(store: Store, handoff: HandOff[Any] | None, state: RoomState | None,
                      deliveries: list[Delivery],
                      kept: Sequence[Quarantined]) -> tuple[list[Delivery], int]:
    """Commit; the deliveries the hand-off reserved room for are added claimed and
    handed to it, the others wait in the outbox (the hand-off wakes their claimer). A page
    whose lanes are full waits for their room first (``HandOff.room_for``), so its tailer
    reads no further meanwhile. Returns the deliveries added and how many quarantined
    messages were new."""
    if handoff is None:
        return await store.commit_page(state, deliveries, kept)
    if deliveries and (waiting := handoff.room_for(deliveries)) is not None:
        await waiting
    reserved = handoff.reserve(deliveries) if deliveries else None
    try:
        if reserved is None:
            result = await store.commit_page(state, deliveries, kept)
        else:
            # finished even if a shutdown cancels the poll meanwhile: the rows it claims
            # are then held by the sender, which gives them back as it stops
            result = await finish_first(store.commit_page(
                state, deliveries, kept, claimed=reserved.ids))
    except BaseException:
        handoff.adopt(reserved, ())
        raise
    handoff.adopt(reserved, result[0])
    return result
