"""The running daemon: wires config, store, client, tailers and sender; owns start and stop.

Shutdown is phased: stop polling → let deliveries in flight finish within
``delivery.shutdown_grace`` → cancel what remains (it stays in the outbox) → close the
HTTP sessions and the store in reverse order of opening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from notifier.config import Config
from notifier.delivery.sender import DeliveryOutcome, Sender
from notifier.errors import RoomlioAuthError, RoomlioError, StoreError
from notifier.roomlio import RoomlioClient, RoomlioNotFoundError
from notifier.rules import compile_rules
from notifier.store import Store, open_store
from notifier.tailer import Tailer, routes_for

__all__ = ["Service", "ServiceHooks"]

log = logging.getLogger("notifier.service")

#: How long a room that keeps failing waits at most between polls.
MAX_ROOM_BACKOFF = 300.0
#: How often the ledger of emitted versions is pruned.
PRUNE_INTERVAL = 600.0


@dataclass
class ServiceHooks:
    """Optional observers (the demo prints deliveries; tests await conditions)."""

    on_outcome: Callable[[DeliveryOutcome], None] | None = None
    on_poll: Callable[[str, int], None] | None = None


@dataclass
class _RoomHealth:
    failures: int = 0
    last_error: str = ""
    next_scan: float = field(default=0.0)


class Service:
    """``await Service(config).run(stop)`` runs until ``stop`` is set or a fatal error."""

    def __init__(self, config: Config, *, hooks: ServiceHooks | None = None,
                 instance: str = "local", store: Store | None = None) -> None:
        self.config = config
        self.hooks = hooks or ServiceHooks()
        self.instance = instance
        self._store = store
        self._rng = random.Random()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop``; raise RoomlioAuthError (bad key) or StoreError (bad state)."""
        async with contextlib.AsyncExitStack() as stack:
            store = self._store or open_store(self.config.state, instance=self.instance,
                                              exclusive=True)
            await store.open()
            stack.push_async_callback(store.close)
            session = aiohttp.ClientSession()
            stack.push_async_callback(session.close)
            client = RoomlioClient(self.config.roomlio, session, instance=self.instance)
            sender = Sender(self.config.webhooks, store, on_outcome=self.hooks.on_outcome)
            try:
                await self._run_tasks(stop, store, client, sender)
            except BaseExceptionGroup as group:
                raise _first_fatal(group) from None

    async def _run_tasks(self, stop: asyncio.Event, store: Store, client: RoomlioClient,
                         sender: Sender) -> None:
        matcher = compile_rules(self.config.rules)
        routes = routes_for(self.config.rules)
        tailers = [
            Tailer(room, client=client, store=store, matcher=matcher, routes=routes,
                   settings=self.config.roomlio, on_enqueued=sender.poke)
            for room in self.config.rooms
        ]
        polling_done = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                dispatcher = group.create_task(sender.run(polling_done), name="dispatcher")
                rooms = [group.create_task(self._tail(t, stop), name=f"room {t.room.name}")
                         for t in tailers]
                group.create_task(self._prune(store, stop), name="prune")
                await stop.wait()
                log.info("stopping: polling ends, deliveries in flight get %.1fs",
                         self.config.delivery.shutdown_grace)
                for task in rooms:
                    task.cancel(msg="shutting down")
                polling_done.set()
                await dispatcher
        finally:
            await sender.shutdown(self.config.delivery.shutdown_grace)

    async def _tail(self, tailer: Tailer, stop: asyncio.Event) -> None:
        settings = self.config.roomlio
        health = _RoomHealth(next_scan=time.monotonic() + settings.edit_scan_interval)
        while not stop.is_set():
            delay = settings.poll_interval
            try:
                seen = await tailer.poll()
                if settings.edit_lookback > 0 and time.monotonic() >= health.next_scan:
                    await tailer.scan_edits()
                    health.next_scan = time.monotonic() + settings.edit_scan_interval
                if health.failures:
                    log.info("room %s: polling again after %d failure(s)",
                             tailer.room.name, health.failures)
                health.failures = 0
                if self.hooks.on_poll is not None:
                    self.hooks.on_poll(tailer.room.name, seen)
            except RoomlioAuthError:
                raise
            except (RoomlioError, StoreError) as exc:
                delay = self._room_failed(tailer, health, exc)
            # a little jitter keeps many rooms from polling in lock-step
            await _sleep_unless(stop, delay * self._rng.uniform(0.9, 1.1))

    def _room_failed(self, tailer: Tailer, health: _RoomHealth,
                     exc: RoomlioError | StoreError) -> float:
        health.failures += 1
        health.last_error = str(exc)
        base = self.config.roomlio.poll_interval
        delay: float = min(MAX_ROOM_BACKOFF, base * 2.0 ** min(health.failures, 10))
        if isinstance(exc, RoomlioNotFoundError):
            delay = MAX_ROOM_BACKOFF
        log.warning("room %s: %s; next try in %.0fs (cursor kept)", tailer.room.name, exc, delay)
        return delay

    async def _prune(self, store: Store, stop: asyncio.Event) -> None:
        keep = max(2 * self.config.roomlio.edit_lookback, 3600.0)
        while not stop.is_set():
            try:
                await store.prune(time.time() - keep)
            except StoreError as exc:
                log.warning("pruning the ledger failed: %s", exc)
            await _sleep_unless(stop, PRUNE_INTERVAL)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _first_fatal(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report when a task of the group failed (the group itself is noise)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_fatal(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group
