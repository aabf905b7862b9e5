"""``notifier dlq list | replay | purge``: look at dead letters, send them again, or drop them.

Safe while ``notifier run`` runs: the store's own locking keeps the writes apart, and a
replayed delivery simply reappears in the outbox, where the running sender finds it. A
replayed delivery keeps its ``webhook-id``; the timestamp and signatures are made fresh
on every attempt, so a receiver's timestamp tolerance is met even days later.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from notifier.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_USAGE,
    add_config,
    confirmed,
    load,
    moment,
    opened,
    reported,
    shown_time,
)
from notifier.config import Config
from notifier.delivery.errortext import Scrubber
from notifier.errors import StoreError
from notifier.runtime.logs import config_secrets
from notifier.store import DeadLetter
from notifier.util.redaction import Redactor

__all__ = ["register", "select"]


def register(subparsers: Any) -> None:
    """Add ``dlq`` and its three actions."""
    dlq = subparsers.add_parser("dlq", help="list, replay or purge dead letters")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text, handler in (
            ("list", "show dead letters", _list),
            ("replay", "put dead letters back in the outbox, to be sent again", _replay),
            ("purge", "delete dead letters for good", _purge)):
        parser = actions.add_parser(name, help=help_text)
        add_config(parser)
        parser.add_argument("--webhook", action="append", help="only this webhook (repeatable)")
        parser.add_argument("--rule", action="append", help="only deliveries for this rule")
        parser.add_argument("--since", type=moment, help="only those failed since: 2h or an "
                                                         "ISO 8601 time")
        parser.add_argument("--id", action="append", dest="ids", metavar="EVENT_ID",
                            help="only this event id or webhook-id (repeatable)")
        parser.set_defaults(handler=lambda args, h=handler: _run(args, h))
        if name == "list":
            parser.add_argument("--json", action="store_true", help="one JSON object a line")
        if name == "purge":
            parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def select(letters: list[DeadLetter], args: argparse.Namespace) -> list[DeadLetter]:
    """The dead letters that pass every filter given (pure)."""
    def keep(dl: DeadLetter) -> bool:
        d = dl.delivery
        return ((not args.webhook or d.webhook in args.webhook)
                and (not args.rule or bool(set(args.rule) & set(d.rules)))
                and (args.since is None or dl.failed_at >= args.since)
                and (not args.ids or d.id in args.ids or d.event.id in args.ids))
    return [dl for dl in letters if keep(dl)]


def _run(args: argparse.Namespace, action: Any) -> int:
    config = load(args.config)
    if config is None:
        return EXIT_CONFIG
    try:
        result: int = asyncio.run(action(args, config))
        return result
    except StoreError as exc:
        return reported(exc)


def _redactor(config: Config) -> Callable[[str], str]:
    """Cleans a stored error text for printing: rows written by an older version (or by a
    receiver's echo) may hold a webhook URL, a path token or another configured secret."""
    scrub = Scrubber(config.webhooks.values())
    secrets = Redactor(config_secrets(config))
    return lambda text: scrub(secrets.redact(text))


def _row(dl: DeadLetter, redact: Callable[[str], str]) -> dict[str, Any]:
    d = dl.delivery
    return {"failed_at": shown_time(dl.failed_at), "webhook": d.webhook, "event_id": d.event.id,
            "webhook_id": d.id, "type": d.event.kind, "room": d.event.room,
            "rules": list(d.rules), "attempts": d.attempts, "last_status": dl.last_status,
            "last_error": redact(dl.last_error)}


async def _list(args: argparse.Namespace, config: Config) -> int:
    async with opened(config) as store:
        letters = select(await store.dead_letters(), args)
    redact = _redactor(config)
    if args.json:
        for dl in letters:
            print(json.dumps(_row(dl, redact)))
        return EXIT_OK
    print(f"{'failed at':20}  {'webhook':12}  {'attempts':>8}  {'last':24}  event id")
    for dl in letters:
        r = _row(dl, redact)
        last = str(r["last_status"] or r["last_error"] or "-")[:24]
        print(f"{r['failed_at']:20}  {r['webhook']:12}  {r['attempts']:>8}  {last:24}  "
              f"{r['event_id']}  ({', '.join(r['rules'])})")
    print(f"{len(letters)} dead letter(s)", file=sys.stderr)
    return EXIT_OK


async def _replay(args: argparse.Namespace, config: Any) -> int:
    async with opened(config) as store:
        letters = select(await store.dead_letters(), args)
        moved = await store.requeue_dead_letters([dl.delivery.id for dl in letters],
                                                 time.time())
    print(f"{moved} dead letter(s) put back in the outbox; a running notifier sends them now "
          "(same webhook-id, fresh timestamp and signature)")
    return EXIT_OK


async def _purge(args: argparse.Namespace, config: Any) -> int:
    async with opened(config) as store:
        letters = select(await store.dead_letters(), args)
        if not letters:
            print("no dead letters match; nothing purged")
            return EXIT_OK
        if not confirmed(f"Delete {len(letters)} dead letter(s) for good?", yes=args.yes):
            print("not purged (confirm interactively, or pass --yes)", file=sys.stderr)
            return EXIT_USAGE
        deleted = await store.purge_dead_letters([dl.delivery.id for dl in letters])
    print(f"{deleted} dead letter(s) purged")
    return EXIT_OK

