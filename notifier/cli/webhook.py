"""``notifier webhook enable NAME``: turn a disabled webhook back on.

The held deliveries are still in the outbox; a running notifier sees the change within
about a second and sends them (the breaker starts closed, the failure streak afresh).

``notifier webhook public-key NAME`` prints the ``whpk_`` public key of each ``whsk_``
key the webhook signs with, for its receiver (a public key is not a secret).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from notifier.cli.common import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    add_config,
    load,
    opened,
    reported,
)
from notifier.errors import StoreError
from notifier.signing import Ed25519Key, public_key_text
from notifier.store import WebhookState

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``webhook enable`` and ``webhook public-key``."""
    webhook = subparsers.add_parser("webhook", help="manage a webhook's state")
    actions = webhook.add_subparsers(dest="action", required=True, metavar="ACTION")
    enable = actions.add_parser("enable", help="turn a disabled webhook back on")
    enable.add_argument("name", help="the webhook's name in rules.yaml")
    add_config(enable)
    enable.set_defaults(handler=_enable)
    public = actions.add_parser("public-key", help="print the whpk_ keys receivers verify "
                                                   "this webhook's v1a signatures with")
    public.add_argument("name", help="the webhook's name in rules.yaml")
    add_config(public)
    public.set_defaults(handler=_public_key)


def _public_key(args: argparse.Namespace) -> int:
    config, code = _config_naming(args)
    if config is None:
        return code
    keys = [k for k in config.webhooks[args.name].secrets if isinstance(k, Ed25519Key)]
    if not keys:
        print(f"notifier: webhook {args.name} has no whsk_ key (it signs with v1 shared "
              "secrets only, or not at all)", file=sys.stderr)
        return EXIT_ERROR
    for key in keys:
        print(public_key_text(key))
    return EXIT_OK


def _config_naming(args: argparse.Namespace) -> tuple[Any, int]:
    """The config, if it loads and names the webhook ``args.name``; else the exit code."""
    config = load(args.config)
    if config is None:
        return None, EXIT_CONFIG
    if args.name not in config.webhooks:
        print(f"notifier: unknown webhook {args.name!r} (known: "
              f"{', '.join(config.webhooks)})", file=sys.stderr)
        return None, EXIT_USAGE
    return config, EXIT_OK


def _enable(args: argparse.Namespace) -> int:
    config, code = _config_naming(args)
    if config is None:
        return code
    try:
        was = asyncio.run(_reset(config, args.name))
    except StoreError as exc:
        return reported(exc)
    if was is None or not was.disabled:
        print(f"webhook {args.name} is not disabled; nothing changed")
    else:
        print(f"webhook {args.name} enabled (it was disabled: {was.disabled_reason}); "
              "a running notifier sends its held deliveries now")
    return EXIT_OK


async def _reset(config: Any, name: str) -> WebhookState | None:
    async with opened(config) as store:
        was = (await store.webhook_states()).get(name)
        if was is not None and was.disabled:  # the runner adopts this within a second
            await store.save_webhook_state(WebhookState(name,
                                                        last_success_at=was.last_success_at))
    return was
