"""A delivery worker process: claims and POSTs deliveries from the runner's SQLite outbox.

Started by the runner (``notifier.runtime.workers``), never by hand:
``python -m notifier.runtime.worker CONFIG INSTANCE LEVEL FORMAT``. It reads the same
config file (no secret travels on a command line), opens the state file beside the
runner (SQLite serialises the claims: a row is claimed by one process), and runs an
ordinary Sender for the webhooks workers own (``delivered_by_workers``). Lines on stdin:
``poke`` (deliveries were committed), ``reload`` (the runner took a new config); end of input
stops it: POSTs under way get ``delivery.shutdown_grace``, the rest is released. Each
attempt and outcome goes back to the runner as one JSON line on stdout (metrics, the
status page, hooks); the event in a report carries no message (``{}``): the runner counts
and shows deliveries, it does not read them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Mapping
from typing import Any, cast

from notifier import __version__
from notifier.config import Config, Webhook
from notifier.delivery.formats import load_config
from notifier.delivery.sender import AttemptReport, DeliveryOutcome, Sender
from notifier.errors import ConfigError
from notifier.events import Delivery, Event, EventKind
from notifier.runtime.logs import config_secrets, setup_logging
from notifier.store import open_store
from notifier.util import tracing
from notifier.util.aio import run_loop
from notifier.util.json import dumps_bytes, loads

__all__ = ["decode_report", "delivered_by_workers", "encode_attempt", "encode_outcome"]

log = logging.getLogger("notifier.delivery")


def delivered_by_workers(webhooks: Mapping[str, Webhook]) -> dict[str, Webhook]:
    """The webhooks that workers deliver: those whose limits hold per process anyway.

    A ``rate_limit``, a ``group_wait`` window and ``ordered`` sending are kept by one
    process (the runner), so that N workers neither multiply the rate nor split a group.
    """
    return {name: w for name, w in webhooks.items()
            if w.rate_limit is None and w.group_wait == 0 and not w.ordered}


def _delivery_json(d: Delivery) -> dict[str, Any]:
    e = d.event  # its message stays here: reports are for counting, not for reading
    return {"id": d.id, "webhook": d.webhook, "rules": d.rules, "attempts": d.attempts,
            "event": {"id": e.id, "kind": e.kind, "room": e.room, "rules": e.rules,
                      "detected_at": e.detected_at}}


def _delivery(doc: dict[str, Any]) -> Delivery:
    e = doc["event"]
    event = Event(e["id"], cast(EventKind, e["kind"]), e["room"], {}, tuple(e["rules"]),
                  e["detected_at"])
    return Delivery(doc["id"], doc["webhook"], tuple(doc["rules"]), event, doc["attempts"])


def encode_attempt(r: AttemptReport) -> bytes:
    """One report line for an attempt."""
    return dumps_bytes({"attempt": _delivery_json(r.delivery), "n": r.attempt,
                        "status": r.status, "error": r.error, "seconds": r.seconds}) + b"\n"


def encode_outcome(o: DeliveryOutcome) -> bytes:
    """One report line for an outcome."""
    return dumps_bytes({"outcome": _delivery_json(o.delivery), "ok": o.ok, "n": o.attempts,
                        "status": o.status, "error": o.error}) + b"\n"


def decode_report(line: bytes) -> AttemptReport | DeliveryOutcome:
    """The report a line from ``encode_attempt`` or ``encode_outcome`` stands for."""
    doc = loads(line)
    if "attempt" in doc:
        return AttemptReport(_delivery(doc["attempt"]), doc["n"], doc["status"],
                             doc["error"], doc["seconds"])
    return DeliveryOutcome(_delivery(doc["outcome"]), doc["ok"], doc["n"], doc["status"],
                           doc["error"])


class _Reports:
    """Report lines to stdout, written once per event-loop turn rather than per report."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self._pending = bytearray()

    @classmethod
    async def to_stdout(cls) -> _Reports:
        transport, _ = await asyncio.get_running_loop().connect_write_pipe(
            asyncio.Protocol, sys.stdout)
        return cls(transport)

    def add(self, line: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending += line

    def _flush(self) -> None:
        self._transport.write(bytes(self._pending))
        self._pending.clear()


async def _commands(sender: Sender, config_path: str) -> None:
    """Follow the runner's lines on stdin until it closes them."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"reload":
            try:
                sender.update_webhooks(delivered_by_workers(load_config(config_path).webhooks))
            except ConfigError as exc:  # the runner checked it: only a race gets here
                log.error("delivery worker: the config no longer loads: %s", exc)
        sender.poke()


async def serve(config: Config, instance: str) -> None:
    """Deliver until stdin ends; then finish within the grace period and release claims."""
    store = open_store(config.state, instance=instance)
    # attempt spans, each in the trace of the message version it delivers
    tracing.start(version=__version__, instance=instance)
    await store.open()
    reports = await _Reports.to_stdout()
    sender = Sender(delivered_by_workers(config.webhooks), store, ops_webhook=config.ops_webhook,
                    on_outcome=lambda o: reports.add(encode_outcome(o)),
                    on_attempt=lambda r: reports.add(encode_attempt(r)))
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(sender.run(stop), name="dispatcher")
    try:
        await _commands(sender, config.path)
    finally:
        stop.set()
        sender.poke()
        await dispatcher
        await sender.shutdown(config.delivery.shutdown_grace)
        await store.close()
        await asyncio.to_thread(tracing.stop)


def main(argv: list[str]) -> None:
    config_path, instance, level, fmt = argv
    # A terminal's Ctrl-C and a service manager's SIGTERM reach the whole process group:
    # the runner answers them by closing our stdin, which stops us in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    config = load_config(config_path)
    setup_logging(level, fmt, secrets=config_secrets(config))
    run_loop(serve(config, instance))


if __name__ == "__main__":
    main(sys.argv[1:])
