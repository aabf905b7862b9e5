"""``notifier replay --since TIME``: re-derive events from Roomlio history and send them again.

For a receiver that lost data, or a rule added after the fact: each room is re-read from
``since`` (RoomHistory with ``since``, then its cursors), every message goes through the
*current* rules, and the matching deliveries are enqueued even when the ledger says they
were sent already (that is the point). Events keep their natural ``webhook-id`` (message
id + ``editedAt`` + webhook), so an idempotent receiver drops what it already has.
Saved cursors are never read or moved. An edited message is replayed as its current
version, like the tail would see it now.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from notifier.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_USAGE,
    add_config,
    load,
    moment,
    opened,
    reported,
)
from notifier.config import Config, Room
from notifier.errors import NotifierError
from notifier.events import CREATED, EDITED, Delivery, Event, is_edited
from notifier.polling.client import MAX_IDLE_PAGES, RoomlioClient
from notifier.polling.pagesize import PageBudget, sized_page
from notifier.polling.tailer import deliveries_for, routes_for
from notifier.rules import Matcher, compile_rules
from notifier.util.time import format_time

__all__ = ["history", "register", "replay_deliveries"]


def register(subparsers: Any) -> None:
    """Add ``replay``."""
    replay = subparsers.add_parser("replay", help="re-derive events from Roomlio history "
                                                  "and enqueue them again")
    add_config(replay)
    replay.add_argument("--since", type=moment, required=True,
                        help="an ISO 8601 time (2026-11-20T00:00:00Z) or a duration back (6h)")
    replay.add_argument("--room", action="append", help="only this room, as configured")
    replay.add_argument("--rule", action="append", help="only this rule")
    replay.add_argument("--webhook", action="append", help="only this webhook")
    replay.add_argument("--dry-run", action="store_true", help="print counts; enqueue nothing")
    replay.set_defaults(handler=_replay)


def replay_deliveries(message: Mapping[str, Any], room: Room, matcher: Matcher,
                      routes: Mapping[str, tuple[str, ...]], args: argparse.Namespace,
                      now: float) -> list[Delivery]:
    """The deliveries the current rules make of ``message``, narrowed by the filters (pure)."""
    names = frozenset(n for n in (room.id, room.key) if n)
    kind = EDITED if is_edited(message) else CREATED
    rules = matcher.match(message, kind, names)
    if not rules and kind == EDITED:  # first seen already edited: the tail called it created
        kind, rules = CREATED, matcher.match(message, CREATED, names)
    if args.rule:
        rules = tuple(r for r in rules if r in args.rule)
    if not rules:
        return []
    event = Event.from_message(kind, room.name, message, rules, now)
    return [d for d in deliveries_for(event, routes)
            if not args.webhook or d.webhook in args.webhook]


async def history(client: RoomlioClient, room: Room, since: str,
                  page_size: int) -> AsyncIterator[Mapping[str, Any]]:
    """Every message of ``room`` from ``since`` on, once each, whatever the cursor reading."""
    seen: set[str] = set()
    asked: set[str] = set()  # a nextCursor that comes back would loop for ever
    cursor: str | None = None
    idle = 0
    turns = PageBudget().turns(page_size)  # one reader: no other room shares the budget
    while idle < MAX_IDLE_PAGES:
        asked.add(cursor or "")
        page = await sized_page(client, room, turns, cursor, None if cursor else since)
        idle += 1
        for message in page.messages:
            if message["id"] not in seen:
                seen.add(message["id"])
                idle = 0
                yield message
        next_cursor = page.next_cursor or (page.messages[-1]["id"] if page.messages else "")
        if not page.has_more or not next_cursor or next_cursor in asked:
            return
        cursor = next_cursor


def _replay(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config is None:
        return EXIT_CONFIG
    unknown = _unknown(config, args)
    if unknown:
        print(f"notifier: {unknown}", file=sys.stderr)
        return EXIT_USAGE
    try:
        counts, added = asyncio.run(_collect(config, args))
    except NotifierError as exc:
        return reported(exc)
    for (webhook, rule), n in sorted(counts.items()):
        print(f"{webhook:16} {rule:20} {n}")
    total = sum(1 for _ in counts.elements())
    if args.dry_run:
        print(f"dry run: {total} delivery(ies) would be enqueued; nothing was changed")
    else:
        print(f"{added} delivery(ies) enqueued ({total - added} already pending); same "
              "webhook-ids as the first time")
    return EXIT_OK


def _unknown(config: Config, args: argparse.Namespace) -> str | None:
    known = {"room": [r.name for r in config.rooms], "rule": [r.name for r in config.rules],
             "webhook": list(config.webhooks)}
    for what, names in known.items():
        for given in getattr(args, what) or ():
            if given not in names:
                return f"unknown {what} {given!r} (known: {', '.join(names)})"
    return None


async def _collect(config: Config, args: argparse.Namespace) -> tuple[Counter[tuple[str, str]],
                                                                       int]:
    matcher, routes = compile_rules(config.rules), routes_for(config.rules)
    rooms = [r for r in config.rooms if not args.room or r.name in args.room]
    since, now = format_time(args.since), time.time()
    found: list[Delivery] = []
    async with aiohttp.ClientSession() as session:
        client = RoomlioClient(config.roomlio, session, instance="replay")
        for room in rooms:
            async for message in history(client, room, since, config.roomlio.page_size):
                found += replay_deliveries(message, room, matcher, routes, args, now)
    added = 0
    if not args.dry_run and found:
        async with opened(config) as store:
            added = await store.requeue(found, now)
    return _per_delivery(found), added


def _per_delivery(found: list[Delivery]) -> Counter[tuple[str, str]]:
    """Deliveries per (webhook, first rule): each delivery counted once."""
    return Counter((d.webhook, d.rules[0]) for d in found)
