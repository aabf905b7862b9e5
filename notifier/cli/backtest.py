"""``notifier backtest --since 7d [--room ID_OR_KEY]``: what the rules would have fired on.

Reads real history through RoomHistory and reports matches per rule and per webhook, with
samples. It never delivers, never opens the state file, never moves a cursor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aiohttp

from notifier.cli.common import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    add_config,
    load,
    moment,
    reported,
    shown_time,
)
from notifier.config import Config, Room
from notifier.errors import NotifierError, RoomlioAuthError, RoomlioError
from notifier.polling.backtest import Tally, history
from notifier.polling.client import RoomlioClient
from notifier.rules import compile_rules

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``backtest``."""
    parser = subparsers.add_parser(
        "backtest", help="replay room history through the rules; never delivers")
    add_config(parser)
    parser.add_argument("--since", type=moment, required=True,
                        help="how far back: a duration like 7d or an ISO 8601 time")
    parser.add_argument("--room", action="append",
                        help="only this room, by id or key (repeatable; default: every room)")
    parser.add_argument("--json", action="store_true", help="the report as one JSON document")
    parser.set_defaults(handler=_run)


def _rooms(config: Config, wanted: list[str] | None) -> list[Room]:
    if not wanted:
        return list(config.rooms)
    by_name = {n: room for room in config.rooms for n in (room.id, room.key) if n}
    return [by_name.get(w) or (Room(id=w) if w.startswith("rm_") else Room(key=w))
            for w in wanted]


def _run(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config is None:
        return EXIT_CONFIG
    tally = Tally(config)
    try:
        failed = asyncio.run(_read(config, _rooms(config, args.room), args.since, tally))
    except NotifierError as exc:
        return reported(exc)
    if args.json:
        print(json.dumps({"since": shown_time(args.since), **tally.as_json(),
                          "failed_rooms": failed}, ensure_ascii=False))
    else:
        _print(tally, shown_time(args.since))
    return EXIT_ERROR if failed else EXIT_OK


async def _read(config: Config, rooms: list[Room], since: float, tally: Tally) -> dict[str, str]:
    """Read every room into ``tally``; the rooms that failed, with why."""
    matcher = compile_rules(config.rules)
    failed: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:
        client = RoomlioClient(config.roomlio, session, instance="backtest")
        for room in rooms:
            names = frozenset(n for n in (room.id, room.key) if n)
            try:
                async for message in history(client, room, since=shown_time(since),
                                             page_size=config.roomlio.page_size):
                    tally.add(matcher, room, message, names)
            except RoomlioAuthError:
                raise
            except RoomlioError as exc:
                failed[room.name] = str(exc)
                print(f"room {room.name}: {exc}", file=sys.stderr)
    return failed


def _print(tally: Tally, since: str) -> None:
    print(f"backtest since {since}: {tally.messages} message(s) read; nothing was delivered")
    width = max((len(r.name) for r in tally.config.rules), default=4)
    print(f"\n{'rule'.ljust(width)}  matches")
    for rule in tally.config.rules:
        print(f"{rule.name.ljust(width)}  {tally.per_rule[rule.name]}")
        for s in tally.samples.get(rule.name, []):
            print(f"{''.ljust(width)}    {s.room} {s.id} ({s.kind.removeprefix('message.')},"
                  f" {s.why or 'no text condition'}): {s.excerpt}")
    print("\nwebhook deliveries")
    for name in tally.config.webhooks:
        print(f"  {name}: {tally.per_webhook[name]}")
    never = tally.never_matched()
    if never:
        print(f"\nwarning: never matched in this history: {', '.join(never)}")
        for name in never:
            print(f"  {name}: most often stopped by {tally.blocker(name)}")
