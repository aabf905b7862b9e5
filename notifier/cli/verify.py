"""``notifier verify``: tell a receiver's developer whether a captured request verifies.

::

    notifier verify --secret whsec_... --headers headers.txt --body body.json
    notifier verify --secret whsec_... --request captured.json   # {"headers": {}, "body": ""}
    notifier verify --public-key whpk_... --request captured.json  # v1a (ed25519) signatures

Headers are ``Name: value`` lines (as copied from a request dump) or a JSON object. The
secret may also come from ``$WEBHOOK_SECRET`` (keeps it out of the shell history); it is
never printed. ``--public-key whpk_...`` (or ``$WEBHOOK_PUBLIC_KEY``) checks ``v1a``
signatures. Exit 0 if the request verifies, 1 if not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from notifier.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from notifier.delivery.diagnose import diagnose

__all__ = ["parse_headers", "register"]


def register(subparsers: Any) -> None:
    """Add ``verify``."""
    verify = subparsers.add_parser("verify", help="check a captured webhook request's signature")
    verify.add_argument("--secret", action="append",
                        help="a whsec_ secret (repeatable; default: $WEBHOOK_SECRET)")
    verify.add_argument("--public-key", action="append", default=[],
                        help="a whpk_ ed25519 public key, for v1a signatures (repeatable; "
                             "default: $WEBHOOK_PUBLIC_KEY)")
    verify.add_argument("--headers", help="a file of 'Name: value' lines or a JSON object")
    verify.add_argument("--body", help="a file holding the raw body")
    verify.add_argument("--request", help='a JSON file {"headers": {...}, "body": "..."}')
    verify.add_argument("--now", type=int, help="unix time to check the timestamp against")
    verify.set_defaults(handler=_verify)


def parse_headers(text: str) -> dict[str, str]:
    """Headers from a JSON object or ``Name: value`` lines (a request line is skipped)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return {str(k): str(v) for k, v in json.loads(stripped).items()}
    headers = {}
    for line in stripped.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            headers[name.strip().lower()] = value.strip()
    return headers


def _read(args: argparse.Namespace) -> tuple[dict[str, str], bytes]:
    if args.request:
        with open(args.request, encoding="utf-8") as file:
            doc = json.load(file)
        body = doc.get("body", "")
        return ({str(k): str(v) for k, v in doc.get("headers", {}).items()},
                body.encode() if isinstance(body, str) else json.dumps(body).encode())
    if not (args.headers and args.body):
        raise ValueError("give --request FILE, or both --headers FILE and --body FILE")
    with open(args.headers, encoding="utf-8") as file:
        headers = parse_headers(file.read())
    with open(args.body, "rb") as file:
        return headers, file.read()


def _verify(args: argparse.Namespace) -> int:
    secrets = (args.secret or _env("WEBHOOK_SECRET")) + (
        args.public_key or _env("WEBHOOK_PUBLIC_KEY"))
    if not secrets:
        print("notifier: give --secret or --public-key, or set WEBHOOK_SECRET",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        headers, body = _read(args)
    except (OSError, ValueError, AttributeError) as exc:
        print(f"notifier: cannot read the request: {exc}", file=sys.stderr)
        return EXIT_USAGE
    verdict = diagnose(secrets, headers, body, now=args.now or int(time.time()))
    for reason in verdict.reasons:
        print(("OK: " if verdict.ok else "FAILED: ") + reason)
    return EXIT_OK if verdict.ok else EXIT_ERROR


def _env(name: str) -> list[str]:
    return [os.environ[name]] if os.environ.get(name) else []
