"""What the operations subcommands share: the --config option, loading the config,
opening the state store alongside a running notifier, and reading ``--since``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from notifier.config import Config
from notifier.config.fields import parse_duration
from notifier.delivery.formats import load_config
from notifier.errors import ConfigError, NotifierError, RoomlioAuthError, StoreError
from notifier.store import Store, open_store
from notifier.util.time import format_time, parse_time

__all__ = ["EXIT_CONFIG", "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "add_config", "confirmed",
           "load", "moment", "opened", "reported", "shown_time"]

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_USAGE = 0, 1, 2, 64


def add_config(parser: argparse.ArgumentParser) -> None:
    """The ``--config`` option every subcommand takes."""
    parser.add_argument("--config", "-c", default=os.environ.get("NOTIFIER_CONFIG", "rules.yaml"),
                        help="the rules file (default: $NOTIFIER_CONFIG or ./rules.yaml)")


def load(path: str) -> Config | None:
    """The config, or None after printing its problems to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


@asynccontextmanager
async def opened(config: Config) -> AsyncIterator[Store]:
    """The state store, opened beside a running notifier (never exclusively)."""
    store = open_store(config.state, instance=f"cli-{os.getpid()}")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def moment(value: str, *, now: float | None = None) -> float:
    """Unix time from ``--since``: a duration back from now (``2h``) or an ISO 8601 time."""
    when = parse_time(value) if any(c in value for c in "-:T") else None
    if when is not None:
        return when.timestamp()
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"use a duration like 2h or 3d, or a time like 2026-11-20T00:00:00Z (got {value!r})"
        ) from None
    return (time.time() if now is None else now) - seconds


def shown_time(at: float | None) -> str:
    """A unix time for people, or ``-``."""
    return "-" if at is None else format_time(int(at))


def confirmed(question: str, *, yes: bool) -> bool:
    """Whether a destructive step may go ahead: ``--yes`` given, or the person at the
    terminal typed 'yes' to ``question`` (never without a terminal, e.g. under CI)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        return False
    return input(f"{question} Type 'yes': ").strip().lower() == "yes"


def reported(exc: NotifierError) -> int:
    """Print why a command failed, in the words every command uses, and return its exit code:
    a refused Roomlio key is a configuration problem (2), anything else an error (1)."""
    if isinstance(exc, RoomlioAuthError):
        print(f"notifier: Roomlio refused the API key: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    where = "state store: " if isinstance(exc, StoreError) else ""
    print(f"notifier: {where}{exc}", file=sys.stderr)
    return EXIT_ERROR
