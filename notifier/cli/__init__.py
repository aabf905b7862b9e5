"""The command line: the only package that prints for people or decides exit codes.

``run``, ``check`` and ``demo`` are defined here; every other subcommand is a module of this
package (``COMMAND_MODULES``) exposing ``register(subparsers) -> None``, which like this
module may print for people and return exit codes; ``demo/`` runs the whole pipeline
against a local emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from notifier import __version__
from notifier.cli.common import EXIT_CONFIG, EXIT_OK, reported
from notifier.delivery.formats import FORMATS, check_config, load_config
from notifier.errors import ConfigError, NotifierError
from notifier.runtime.run import install_signals, remember_early_signals, run_daemon
from notifier.store import shown_location

__all__ = ["main"]

#: Modules that add subcommands: each has ``register(subparsers)``, which adds its
#: parsers and sets ``handler`` (a function ``(args) -> exit code``) as their default.
#: They live in notifier/cli/ and print only through the CLI's conventions.
COMMAND_MODULES: tuple[str, ...] = (
    "notifier.cli.test_rules",
    "notifier.cli.backtest",
    "notifier.cli.dlq",
    "notifier.cli.quarantine",
    "notifier.cli.replay",
    "notifier.cli.schema",
    "notifier.cli.status",
    "notifier.cli.state",
    "notifier.cli.verify",
    "notifier.cli.webhook",
)


def _default_config() -> str:
    return os.environ.get("NOTIFIER_CONFIG", "rules.yaml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifier", description=(
        "Tail Roomlio rooms, match messages against rules, deliver signed webhooks."))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the notifier until SIGTERM/SIGINT")
    check = sub.add_parser("check", help="validate a config file without using the network")
    for p in (run, check):
        p.add_argument("--config", "-c", default=_default_config(),
                       help="the rules file (default: $NOTIFIER_CONFIG or ./rules.yaml)")
    run.add_argument("--log-level", default=os.environ.get("NOTIFIER_LOG_LEVEL"),
                     type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="default: $NOTIFIER_LOG_LEVEL, else logging.level, else INFO")
    run.add_argument("--log-format", default=os.environ.get("NOTIFIER_LOG_FORMAT"),
                     choices=["text", "json"],
                     help="default: $NOTIFIER_LOG_FORMAT, else logging.format, else text")
    demo = sub.add_parser("demo", help="run the whole pipeline against a local emulator")
    demo.add_argument("--seconds", type=float, default=None,
                      help="stop after this many seconds (default: until Ctrl-C)")
    demo.add_argument("--rate", type=float, default=2.0, help="simulated messages per second")
    demo.add_argument("--format", default="standard",
                      choices=list(FORMATS),
                      help="the payload format of the demo webhooks; prints each body received")
    demo.add_argument("--log-level", default="WARNING",
                      choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    demo.add_argument("--api-limit", type=_requests_a_second, default=None, metavar="N",
                      help="the emulator refuses the API key's requests beyond N a second "
                           "(429, Retry-After: 1): watch the notifier learn the limit")
    run.set_defaults(handler=_cmd_run)
    check.set_defaults(handler=_cmd_check)
    demo.set_defaults(handler=_cmd_demo)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``notifier`` console script."""
    remember_early_signals()
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


def _cmd_check(args: argparse.Namespace) -> int:
    problems = check_config(args.config)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        noun = "problem" if len(problems) == 1 else "problems"
        print(f"{args.config}: {len(problems)} {noun}", file=sys.stderr)
        return EXIT_CONFIG
    from notifier.config.secrets import secret_warnings
    from notifier.rules import lint

    config = load_config(args.config)
    for warning in (*lint(config.rules, args.config), *secret_warnings(config, args.config)):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.config}: OK")
    return EXIT_OK


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level), stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from notifier.runtime.logs import config_secrets, setup_logging
    from notifier.server import Listener

    setup_logging(args.log_level or "INFO", args.log_format or "text")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(args.log_level or config.logging.level,
                  args.log_format or config.logging.format, secrets=config_secrets(config))

    log = logging.getLogger("notifier")
    log.info("roomlio-notifier %s: %d room(s), %d rule(s), %d webhook(s), state %s",
             __version__, len(config.rooms), len(config.rules), len(config.webhooks),
             shown_location(config.state))
    try:
        run_daemon(config, make_listener=Listener)
    except NotifierError as exc:
        return reported(exc)
    log.info("stopped cleanly")
    return EXIT_OK


def _requests_a_second(text: str) -> float:
    """``--api-limit``: a positive number of requests a second."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of requests a second above 0, "
                                         f"not {text!r}")
    return value


def _cmd_demo(args: argparse.Namespace) -> int:
    from notifier.cli.demo import run_demo

    _setup_logging(args.log_level)
    return asyncio.run(run_demo(seconds=args.seconds, rate=args.rate,
                                install_signals=install_signals, emit=print,
                                fmt=args.format, api_limit=args.api_limit))
