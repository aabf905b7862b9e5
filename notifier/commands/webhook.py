"""``notifier webhook enable NAME``: turn a disabled webhook back on.

The held deliveries are still in the outbox; a running notifier sees the change within
about a second and sends them (the breaker starts closed, the failure streak afresh).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from notifier.commands._common import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    add_config,
    load,
    opened,
)
from notifier.errors import StoreError
from notifier.store import WebhookState

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``webhook enable``."""
    webhook = subparsers.add_parser("webhook", help="manage a webhook's state")
    actions = webhook.add_subparsers(dest="action", required=True, metavar="ACTION")
    enable = actions.add_parser("enable", help="turn a disabled webhook back on")
    enable.add_argument("name", help="the webhook's name in rules.yaml")
    add_config(enable)
    enable.set_defaults(handler=_enable)


def _enable(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.name not in config.webhooks:
        print(f"notifier: unknown webhook {args.name!r} (known: "
              f"{', '.join(config.webhooks)})", file=sys.stderr)
        return EXIT_USAGE
    try:
        was = asyncio.run(_reset(config, args.name))
    except StoreError as exc:
        print(f"notifier: state store: {exc}", file=sys.stderr)
        return EXIT_ERROR
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
