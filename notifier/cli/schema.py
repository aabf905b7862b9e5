"""``notifier schema [NAME] [--asyncapi] [--list] [--write DIR]``: the published schemas.

Prints the JSON Schema (2020-12) of a body (``standard`` by default: every event type a
standard webhook receives), or the AsyncAPI 3.0 document of the webhook, as JSON in a
stable order; ``--write DIR`` writes them all as files (the repository's ``schemas/`` is
that output, and a test keeps it so).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 64

_TEMPLATE = ("notifier schema: format template sends what your template renders (with your "
             "content_type): it has no schema of ours")


def register(subparsers: Any) -> None:
    """Add ``schema``."""
    from notifier.schema import NAMES

    parser = subparsers.add_parser(
        "schema", help="print the JSON Schema of a webhook body, or the AsyncAPI document")
    parser.add_argument("name", nargs="?", default=None, metavar="NAME",
                        help=f"one of: {', '.join(NAMES)} (default: standard)")
    parser.add_argument("--asyncapi", action="store_true",
                        help="the AsyncAPI 3.0 document of the webhook: every format, its "
                             "headers, the signature scheme, examples")
    parser.add_argument("--list", action="store_true", help="the schema names, one a line")
    parser.add_argument("--write", metavar="DIR",
                        help="write every schema and asyncapi.json into DIR")
    parser.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> int:
    from notifier.schema import NAMES, files, render, schema
    from notifier.schema.asyncapi import asyncapi

    if args.write is not None:
        return _write(args.write, files())
    if args.list:
        print("\n".join(NAMES))
        return EXIT_OK
    if args.asyncapi:
        if args.name is not None:
            print("notifier schema: give a NAME or --asyncapi, not both", file=sys.stderr)
            return EXIT_USAGE
        sys.stdout.write(render(asyncapi()))
        return EXIT_OK
    name = args.name or "standard"
    if name == "template":
        print(_TEMPLATE, file=sys.stderr)
        return EXIT_USAGE
    if name not in NAMES:
        print(f"notifier schema: unknown schema {name!r} (choose from: {', '.join(NAMES)})",
              file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render(schema(name)))
    return EXIT_OK


def _write(folder: str, documents: dict[str, str]) -> int:
    try:
        os.makedirs(folder, exist_ok=True)
        for name, text in documents.items():
            with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
                handle.write(text)
    except OSError as exc:
        print(f"notifier schema: cannot write {folder}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_ERROR
    print(f"{folder}: {len(documents)} file(s) written: {', '.join(documents)}")
    return EXIT_OK
