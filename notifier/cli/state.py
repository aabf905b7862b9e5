"""``notifier state migrate --from notifier.db --to postgresql://…``: move a SQLite state
file into PostgreSQL before scaling out (stop ``notifier run`` on the file first)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from notifier.errors import StoreError
from notifier.store import POSTGRES_SCHEMES, shown_location

__all__ = ["register"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 64


def register(subparsers: Any) -> None:
    """Add ``state migrate``."""
    state = subparsers.add_parser("state", help="move the state between stores")
    actions = state.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate", help="copy cursors, outbox and dead letters from SQLite to PostgreSQL")
    migrate.add_argument("--from", dest="source", required=True, metavar="FILE",
                         help="the SQLite state file (no notifier may be running on it)")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL",
                         help="postgresql://user:password@host:5432/database")
    migrate.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    from notifier.store.transfer import sqlite_to_postgres

    target = shown_location(args.target)
    if not args.target.lower().startswith(POSTGRES_SCHEMES):
        print("notifier: --to must be a postgresql:// URL", file=sys.stderr)
        return EXIT_USAGE
    try:
        done = asyncio.run(sqlite_to_postgres(args.source, args.target))
    except StoreError as exc:
        print(f"notifier: state migrate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.source} -> {target}: {done.rooms} room cursor(s), {done.events} event(s), "
          f"{done.outbox} pending delivery(ies), {done.dead_letters} dead letter(s), "
          f"{done.quarantined} quarantined message(s) copied"
          + (f"; {done.skipped_events} event(s) the target already had were skipped"
             if done.skipped_events else ""))
    return EXIT_OK
