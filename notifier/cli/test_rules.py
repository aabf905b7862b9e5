"""``notifier test-rules``: what the rules make of messages, or whether rule unit tests pass.

``test-rules MESSAGES`` reads messages (JSON lines or one JSON array, Roomlio's shape;
missing fields take defaults; ``-`` is stdin) and prints, for each, the rules that match
and the keywords or patterns that made them match. ``test-rules --cases FILE`` runs the
YAML rule unit tests and exits 1 if any fails. Offline: no network, no state file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from notifier.cli.common import EXIT_CONFIG, EXIT_ERROR, EXIT_OK, add_config, load
from notifier.config import Config
from notifier.config.yaml import parse
from notifier.rules import Matcher, compile_rules
from notifier.rules.cases import (
    Case,
    complete_message,
    describe,
    read_cases,
    room_names,
    run_case,
    summary,
)

__all__ = ["read_messages", "register"]


def register(subparsers: Any) -> None:
    """Add ``test-rules``."""
    parser = subparsers.add_parser(
        "test-rules", help="show which rules match given messages, or run rule unit tests")
    add_config(parser)
    parser.add_argument("messages", nargs="?", metavar="MESSAGES",
                        help="a file of messages: JSON lines or a JSON array ('-': stdin)")
    parser.add_argument("--cases", help="a YAML file of rule unit tests to run instead")
    parser.add_argument("--room", help="the room (id or key) the messages were posted in")
    parser.add_argument("--event", choices=("created", "edited"), default="created",
                        help="match the messages as this event (default: created)")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if (args.messages is None) == (args.cases is None):
        print("notifier test-rules: give either MESSAGES or --cases FILE", file=sys.stderr)
        return EXIT_CONFIG
    config = load(args.config)
    if config is None:
        return EXIT_CONFIG
    matcher = compile_rules(config.rules)
    if args.cases is not None:
        return _run_cases(args, config, matcher)
    try:
        messages = list(read_messages(_read(args.messages)))
    except (OSError, ValueError) as exc:
        print(f"{args.messages}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    rooms = room_names(config, args.room)
    for i, raw in enumerate(messages):
        message = complete_message(raw, index=i, room_id=_room_id(rooms))
        found = matcher.explain(message, f"message.{args.event}", rooms)
        if args.json:
            print(json.dumps({"id": message["id"], "matches": [
                {"rule": m.rule, "keywords": list(m.keywords), "patterns": list(m.patterns),
                 "webhooks": list(_notify(config, m.rule))} for m in found]}))
        else:
            shown = ", ".join(f"{m.rule} ({describe(m)})" for m in found) or "no rule"
            print(f"{message['id']}: {shown}")
    return EXIT_OK


def _run_cases(args: argparse.Namespace, config: Config, matcher: Matcher) -> int:
    try:
        source = _read(args.cases)
    except OSError as exc:
        print(f"{args.cases}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    doc, problems = parse(source, args.cases, os.environ)
    cases: list[Case] = []
    if doc is not None:
        cases, more = read_cases(doc, args.cases, config)
        problems += more
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    results = [run_case(matcher, case) for case in cases]
    for result in results:
        where = f"{args.cases}:{result.case.line}" if result.case.line else args.cases
        if args.json:
            print(json.dumps({"case": result.case.name, "line": result.case.line,
                              "ok": result.ok, "matched": list(result.matched),
                              "diff": list(result.diff)}))
        elif result.ok:
            print(f"ok    {where}: {result.case.name}")
        else:
            print(f"FAIL  {where}: {result.case.name}")
            for line in result.diff:
                print(f"        {line}")
            print(f"        matched: {', '.join(result.matched) or 'no rule'}")
    if not args.json:
        print(f"{args.cases}: {summary(results)}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_ERROR


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8-sig") as file:
        return file.read()


def read_messages(source: str) -> Iterator[dict[str, Any]]:
    """The messages in ``source``: one JSON array, or one JSON object a line."""
    stripped = source.strip()
    if stripped.startswith("["):
        items = json.loads(stripped)
        lines = list(range(1, len(items) + 1))
    else:
        pairs = [(n, line) for n, line in enumerate(source.splitlines(), 1) if line.strip()]
        items, lines = [], [n for n, _ in pairs]
        for n, line in pairs:
            try:
                items.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"line {n}: not JSON ({exc})") from None
    for n, item in zip(lines, items, strict=True):
        if not isinstance(item, dict):
            raise ValueError(f"message {n} is not a JSON object")
        yield item


def _room_id(rooms: frozenset[str]) -> str:
    return next((n for n in sorted(rooms) if n.startswith("rm_")), "rm_test")


def _notify(config: Config, rule: str) -> tuple[str, ...]:
    return next((r.notify for r in config.rules if r.name == rule), ())
