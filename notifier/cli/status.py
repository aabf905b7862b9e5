"""``notifier status``: each webhook's health (breaker, failure streak, disabled or not),
and the depth of the outbox and the dead letters. Reads the state store; safe while
``notifier run`` runs."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from typing import Any

from notifier.cli.cluster_status import cluster_doc, cluster_lines
from notifier.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    add_config,
    load,
    opened,
    reported,
)
from notifier.errors import StoreError
from notifier.store import WebhookState

__all__ = ["register", "webhook_rows"]


def register(subparsers: Any) -> None:
    """Add ``status``."""
    status = subparsers.add_parser("status", help="webhook health, outbox and dead letters")
    add_config(status)
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.set_defaults(handler=_status)


def webhook_rows(names: list[str], states: dict[str, WebhookState],
                 dead: Counter[str]) -> list[dict[str, Any]]:
    """One row per configured webhook (pure)."""
    rows = []
    for name in names:
        s = states.get(name, WebhookState(name))
        rows.append({"webhook": name, "enabled": not s.disabled, "breaker": s.breaker,
                     "opened_at": s.opened_at, "failing_since": s.failing_since,
                     "last_success_at": s.last_success_at, "disabled_at": s.disabled_at,
                     "disabled_reason": s.disabled_reason, "dead_letters": dead[name]})
    return rows


def _status(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config is None:
        return EXIT_CONFIG
    try:
        doc = asyncio.run(_read(config))
    except StoreError as exc:
        return reported(exc)
    if args.json:
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    print(f"outbox: {doc['outbox']}  dead letters: {doc['dead_letters']}  rooms: {doc['rooms']}"
          f"  quarantined: {doc['quarantined']}")
    for row in doc["webhooks"]:
        state = "enabled" if row["enabled"] else f"DISABLED ({row['disabled_reason']})"
        print(f"{row['webhook']:16} {state:10} breaker {row['breaker']:9} "
              f"dead letters {row['dead_letters']}")
    for line in cluster_lines(doc.get("cluster")):
        print(line)
    return EXIT_OK


async def _read(config: Any) -> dict[str, Any]:
    async with opened(config) as store:
        stats = await store.stats()
        states = await store.webhook_states()
        dead = Counter(dl.delivery.webhook for dl in await store.dead_letters())
        cluster = await cluster_doc(store)
    return {"outbox": stats.outbox, "dead_letters": stats.dead_letters, "rooms": stats.rooms,
            "quarantined": stats.quarantined,
            "webhooks": webhook_rows(list(config.webhooks), states, dead),
            **({"cluster": cluster} if cluster is not None else {})}
