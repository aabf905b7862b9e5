"""``notifier quarantine list | replay | purge``: messages the tail could not process.

A message with a defect (no id, a ``createdAt`` that is no time, a field of the wrong
type) is kept in the quarantine while its room goes on. ``list`` shows them; ``replay``
runs each through today's parser and rules (after the cause was fixed: the rules, or a
notifier that reads such messages) and enqueues the deliveries it makes, as the tail
would have; ``purge`` forgets them. Safe while ``notifier run`` runs, like ``dlq``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from notifier.cli.common import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    add_config,
    confirmed,
    load,
    opened,
    reported,
    shown_time,
)
from notifier.config import Config
from notifier.errors import StoreError
from notifier.events import CREATED, EDITED, Delivery, Event, is_edited
from notifier.polling.client import check_message
from notifier.polling.tailer import Routes, deliveries_for, routes_for
from notifier.rules import Matcher, compile_rules
from notifier.store import QUARANTINE_RAW_LIMIT, Quarantined, Store
from notifier.util.json import loads
from notifier.util.shown import shown

__all__ = ["Rerun", "register", "rerun"]


def register(subparsers: Any) -> None:
    """Add ``quarantine`` and its three actions."""
    parser = subparsers.add_parser("quarantine", help="list, replay or purge messages the "
                                                      "tail could not process")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text, handler in (
            ("list", "show quarantined messages", _list),
            ("replay", "run them through today's parser and rules; enqueue what matches",
             _replay),
            ("purge", "forget quarantined messages for good", _purge)):
        action = actions.add_parser(name, help=help_text)
        add_config(action)
        action.add_argument("--room", action="append", help="only this room (repeatable)")
        if name == "list":
            action.add_argument("--json", action="store_true", help="one JSON object a line, "
                                "with the message as kept")
        else:
            action.add_argument("ids", nargs="*", type=int, metavar="ID",
                                help="quarantine ids (as `list` shows them)")
            action.add_argument("--all", action="store_true", help="every one (that --room "
                                                                   "selects)")
        if name == "purge":
            action.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        action.set_defaults(handler=lambda args, h=handler: _run(args, h))


def _run(args: argparse.Namespace, action: Any) -> int:
    config = load(args.config)
    if config is None:
        return EXIT_CONFIG
    if getattr(args, "ids", None) == [] and not getattr(args, "all", True):
        print("notifier: give quarantine ids, or --all", file=sys.stderr)
        return EXIT_USAGE
    try:
        result: int = asyncio.run(action(args, config))
        return result
    except StoreError as exc:
        return reported(exc)


def _chosen(items: list[Quarantined], args: argparse.Namespace) -> list[Quarantined]:
    ids = set(getattr(args, "ids", None) or ())
    return [q for q in items if (not args.room or q.room in args.room)
            and (not ids or q.id in ids)]


def _row(q: Quarantined) -> dict[str, Any]:
    return {"id": q.id, "room": q.room, "quarantined_at": shown_time(q.quarantined_at),
            "message_id": q.message_id, "position": q.position, "reason": q.reason,
            "truncated": q.truncated, "message": q.raw}


async def _list(args: argparse.Namespace, config: Config) -> int:
    async with opened(config) as store:
        items = _chosen(await store.quarantined(), args)
    if args.json:
        for q in items:
            print(json.dumps(_row(q), ensure_ascii=True))
        return EXIT_OK
    print(f"{'id':>6}  {'quarantined at':20}  {'room':16}  {'message id':24}  reason")
    for q in items:
        print(f"{q.id:>6}  {shown_time(q.quarantined_at):20}  {shown(q.room, 16):16}  "
              f"{shown(q.message_id or '-', 24):24}  {q.reason}  ({q.position})")
    print(f"{len(items)} quarantined message(s)", file=sys.stderr)
    return EXIT_OK


@dataclass(frozen=True, slots=True)
class Rerun:
    """A kept message run through the parser and the current rules again."""

    item: Quarantined
    problem: str | None
    """Why it still cannot go through (None: it went through)."""
    deliveries: tuple[Delivery, ...] = ()
    """What the rules make of it now (none when no rule matches)."""


def rerun(item: Quarantined, names: Collection[str], matcher: Matcher, routes: Routes,
          now: float) -> Rerun:
    """Check ``item``'s message again and match it (pure); ``names``: the room's id/key."""
    if item.truncated:
        return Rerun(item, f"kept cut at {QUARANTINE_RAW_LIMIT} characters, so it cannot be "
                           "replayed from here; re-read it from Roomlio with `notifier "
                           "replay --since`")
    try:
        message = loads(item.raw)
    except (ValueError, RecursionError) as exc:  # the row was changed by hand
        return Rerun(item, f"the kept message is not JSON ({exc})")
    reason = check_message(message)
    if reason is not None:
        return Rerun(item, f"still defective: {reason}")
    kind = EDITED if is_edited(message) else CREATED
    rules = matcher.match(message, kind, names)
    if not rules and kind == EDITED:  # first seen already edited: the tail calls it created
        kind, rules = CREATED, matcher.match(message, CREATED, names)
    if not rules:
        return Rerun(item, None)
    event = Event.from_message(kind, item.room, message, rules, now)
    return Rerun(item, None, tuple(deliveries_for(event, routes)))


def _reruns(config: Config, items: Sequence[Quarantined]) -> list[Rerun]:
    matcher, routes = compile_rules(config.rules), routes_for(config.rules)
    names = {room.name: frozenset(n for n in (room.id, room.key) if n) for room in config.rooms}
    now = time.time()
    return [rerun(q, names.get(q.room, frozenset({q.room})), matcher, routes, now)
            for q in items]


async def _replay(args: argparse.Namespace, config: Config) -> int:
    async with opened(config) as store:
        runs = _reruns(config, _chosen(await store.quarantined(), args))
        passed = [r for r in runs if r.problem is None]
        added = await _enqueue(store, passed)
    for run in runs:
        if run.problem is not None:
            print(f"{run.item.id}: {run.problem}", file=sys.stderr)
    print(f"{len(passed)} message(s) replayed and taken out of the quarantine "
          f"({added} delivery(ies) enqueued; a running notifier sends them); "
          f"{len(runs) - len(passed)} still held")
    return EXIT_OK if len(passed) == len(runs) else EXIT_ERROR


async def _enqueue(store: Store, passed: list[Rerun]) -> int:
    """Enqueue what the messages make (the ledger drops what was sent already), then take
    them out of the quarantine: a crash in between leaves them there, to replay again."""
    deliveries = [d for run in passed for d in run.deliveries]
    added = await store.commit(None, deliveries) if deliveries else []
    await store.remove_quarantined([run.item.id for run in passed])
    return len(added)


async def _purge(args: argparse.Namespace, config: Config) -> int:
    async with opened(config) as store:
        items = _chosen(await store.quarantined(), args)
        if not items:
            print("no quarantined message matches; nothing purged")
            return EXIT_OK
        if not confirmed(f"Forget {len(items)} quarantined message(s) for good?", yes=args.yes):
            print("not purged (confirm interactively, or pass --yes)", file=sys.stderr)
            return EXIT_USAGE
        removed = await store.remove_quarantined([q.id for q in items])
    print(f"{removed} quarantined message(s) purged")
    return EXIT_OK

