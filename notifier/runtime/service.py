"""The running daemon: wires config, store, client, tailers and sender, and runs them.

``notifier.runtime.run`` starts it (event loop, signals, the ops listener beside it) and
sets its ``stop`` event; how often each room is polled is ``notifier.polling.policy``'s.
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

import aiohttp

from notifier.config import Config, Room, Webhook
from notifier.delivery.lanes import lane_capacity
from notifier.delivery.sender import Sender
from notifier.errors import (
    LeaseLost,
    NotifierError,
    RoomlioAuthError,
    RoomlioError,
    StoreError,
)
from notifier.events import Delivery
from notifier.polling.client import RoomlioClient
from notifier.polling.leases import LeaseStore, RoomKeeper, new_instance_id
from notifier.polling.pagesize import PageBudget
from notifier.polling.policy import jittered, next_interval, slot_delay
from notifier.polling.scheduler import (
    RoomTurn,
    Scheduler,
    ThrottledClient,
    budget_note,
    first_poll_delay,
    read_room,
)
from notifier.polling.tailer import Tailer
from notifier.polling.throttle import KeyThrottle
from notifier.runtime.failures import first_fatal, room_failed, unexpected
from notifier.runtime.handoff import SenderHandOff
from notifier.runtime.hooks import ServiceHooks
from notifier.runtime.logs import config_secrets, current_settings
from notifier.runtime.reload import CompiledConfig, ConfigWatcher, ReloadPlan, load_plan
from notifier.runtime.workers import DeliveryWorkers, delivered_by_workers
from notifier.store import Store, open_store
from notifier.util.aio import sleep_unless
from notifier.util.pacing import TokenBucket

__all__ = ["Service", "ServiceHooks"]

log = logging.getLogger("notifier.service")

#: How often the ledger of emitted versions is pruned.
PRUNE_INTERVAL = 600.0


class Service:
    """``await Service(config).run(stop)`` runs until ``stop`` is set or a fatal error."""

    def __init__(self, config: Config, *, hooks: ServiceHooks | None = None,
                 instance: str | None = None, store: Store | None = None) -> None:
        self.config = config
        self.hooks = hooks or ServiceHooks()
        self.instance = instance or new_instance_id()
        """Names this process in leases, claims and the x-notifier-instance header."""
        self._store = store
        self._rng = random.Random()
        self.store: Store | None = None
        """The open state store while running (the ops listener reads it)."""
        self.sender: Sender | None = None
        self.workers: DeliveryWorkers | None = None
        """Delivery worker processes (``delivery.workers``), while running."""
        self.tailers: dict[str, Tailer] = {}
        self.active = CompiledConfig.of(config)
        """The config in force with its compiled rules; a reload swaps it as one object."""
        self._watcher = ConfigWatcher(config.path, self._reload)
        self._spawn: Callable[[Room], object] | None = None
        self._room_tasks: dict[str, asyncio.Future[None]] = {}
        self.scheduler: Scheduler | None = None
        """Polls every room this instance tails (one task, a heap of due times)."""
        self._keeper: RoomKeeper | None = None
        """Leases the rooms on shared state (a cluster); None on SQLite."""
        self.throttle = KeyThrottle(config.roomlio.max_requests_per_second)
        """The API key's pace, learned from 429s: every request of the process takes its
        turn from it (the status page and metrics read it)."""
        self.polling_note = ""
        """Why rooms are polled later than max_poll_interval ("" when they are not)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop``; raise RoomlioAuthError (bad key) or StoreError (bad state)."""
        async with contextlib.AsyncExitStack() as stack:
            store = self._store or open_store(self.config.state, instance=self.instance,
                                              exclusive=True, cluster=self.config.cluster)
            await store.open()
            stack.push_async_callback(store.close)
            self.store = store
            session = aiohttp.ClientSession()
            stack.push_async_callback(session.close)
            client = self._client(session)
            sender = Sender(self._own_webhooks(), store, on_outcome=self.hooks.on_outcome,
                            on_attempt=self.hooks.on_attempt,
                            ops_webhook=self.config.ops_webhook,
                            backlog=lane_capacity(self.config.roomlio.page_size))
            self.sender = sender
            if self.config.delivery.workers:
                level, fmt = current_settings()
                self.workers = DeliveryWorkers(
                    self.config, store, self.instance, log_level=level, log_format=fmt,
                    on_outcome=self.hooks.on_outcome, on_attempt=self.hooks.on_attempt)
            try:
                await self._run_tasks(stop, store, client, sender)
            except BaseExceptionGroup as group:
                raise first_fatal(group) from None

    def _own_webhooks(self) -> dict[str, Webhook]:
        """The webhooks this process POSTs to (delivery workers take the others)."""
        theirs = (delivered_by_workers(self.config.webhooks) if self.config.delivery.workers
                  else {})
        return {n: w for n, w in self.config.webhooks.items() if n not in theirs}

    def poke(self) -> None:
        """New or replayed deliveries are in the outbox: every sender looks now."""
        if self.sender is not None:
            self.sender.poke()
        if self.workers is not None:
            self.workers.poke()

    def _client(self, session: aiohttp.ClientSession) -> RoomlioClient:
        settings = self.config.roomlio
        secrets = config_secrets(self.config)
        if not settings.max_requests_per_second:
            return RoomlioClient(settings, session, instance=self.instance,
                                 on_error=self.hooks.on_api_error, secrets=secrets,
                                 throttle=self.throttle)
        return ThrottledClient(settings, session, instance=self.instance,
                               on_error=self.hooks.on_api_error, secrets=secrets,
                               throttle=self.throttle,
                               bucket=TokenBucket(settings.max_requests_per_second))

    async def _run_tasks(self, stop: asyncio.Event, store: Store, client: RoomlioClient,
                         sender: Sender) -> None:
        on_enqueued = self._enqueued  # one bound method for every room
        handoff = SenderHandOff(sender, self.poke)
        budget = PageBudget()  # one for the process: bounds the decoded pages it holds

        def make_tailer(room: Room) -> Tailer:
            matcher, routes = self.active.matcher, self.active.routes
            return Tailer(room, client=client, store=store, matcher=matcher, routes=routes,
                          settings=self.config.roomlio, on_enqueued=on_enqueued,
                          on_quarantined=self.hooks.on_quarantined, handoff=handoff,
                          budget=budget)

        tailers = [make_tailer(room) for room in self.config.rooms]
        self.tailers = {t.room.name: t for t in tailers}
        polling_done = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                dispatcher = group.create_task(sender.run(polling_done), name="dispatcher")
                if self.workers is not None:
                    group.create_task(self.workers.run(), name="delivery workers")
                rooms = self._start_rooms(group, store, make_tailer, stop)
                group.create_task(self._prune(store, stop), name="prune")
                group.create_task(self._watcher.run(stop), name="config watcher")
                await stop.wait()
                log.info("stopping: polling ends, deliveries in flight get %.1fs",
                         self.config.delivery.shutdown_grace)
                for task in [*rooms, *self._room_tasks.values()]:
                    task.cancel(msg="shutting down")
                polling_done.set()
                await dispatcher
                if self.workers is not None:  # ends their supervisors, so the group can end
                    await self.workers.shutdown()
        finally:
            if self.workers is not None:
                await self.workers.shutdown()
            await sender.shutdown(self.config.delivery.shutdown_grace)

    def _start_rooms(self, group: asyncio.TaskGroup, store: Store,
                     make_tailer: Callable[[Room], Tailer],
                     stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """One scheduler task polls every room; on shared state, a keeper leases rooms and
        hands those to it."""
        scheduler = self.scheduler = Scheduler(self._step)
        self._check_budget()
        tasks = [group.create_task(scheduler.run(stop), name="room scheduler")]
        if not isinstance(store, LeaseStore):
            def spawn(tailer: Tailer) -> None:
                self._room_tasks[tailer.room.name] = self._schedule(tailer)

            self._spawn = lambda room: spawn(self.tailers.setdefault(room.name, make_tailer(room)))
            for tailer in self.tailers.values():
                spawn(tailer)
            return tasks
        by_name = {room.name: room for room in self.config.rooms}

        def start(name: str) -> asyncio.Future[None]:
            tailer = self.tailers[name] = make_tailer(by_name[name])  # reloads the cursor
            return self._schedule(tailer)

        keeper = self._keeper = RoomKeeper(store, list(by_name), self.config.cluster, start)
        return [*tasks, group.create_task(keeper.run(stop), name="room leases")]

    def _schedule(self, tailer: Tailer) -> asyncio.Future[None]:
        assert self.scheduler is not None
        settings, now = self.config.roomlio, time.monotonic()
        due = now + first_poll_delay(tailer.room.name, settings, len(self.config.rooms))
        return self.scheduler.add(tailer, settings.poll_interval, due=due,
                                  next_scan=now + settings.edit_scan_interval)

    async def _step(self, turn: RoomTurn) -> float | None:
        """One read of a room (its edit scan when due, standing for the poll when it can);
        the pause until the room's next place in its interval (failures: a backoff)."""
        settings, tailer = self.config.roomlio, turn.tailer
        if self._keeper is not None and not self._keeper.current():
            # woken from a pause past the lease TTL: the room may be another's by now,
            # so it is not read until the next heartbeat keeps it (or stops it)
            return self.config.cluster.heartbeat
        try:
            seen = await read_room(turn, settings, self.hooks.on_read)
            if turn.failures:
                log.info("room %s: polling again after %d failure(s)",
                         tailer.room.name, turn.failures)
            turn.failures = 0
            if self.hooks.on_poll is not None:
                self.hooks.on_poll(tailer.room.name, seen)
            turn.quiet = 0 if tailer.fresh else turn.quiet + 1
            turn.interval = next_interval(turn.interval, turn.quiet, settings.poll_interval,
                                          settings.max_poll_interval)
            return slot_delay(tailer.room.name, turn.interval, time.time())
        except RoomlioAuthError:
            raise
        except LeaseLost as exc:
            log.warning("room %s: %s; this instance stops tailing it", tailer.room.name, exc)
            return None
        except (RoomlioError, StoreError) as exc:
            failure: NotifierError = exc
        except Exception as exc:
            failure = unexpected(exc)
        delay = room_failed(tailer.room.name, turn, failure, hooks=self.hooks,
                            poll_interval=self.config.roomlio.poll_interval)
        return jittered(delay, self._rng)

    def request_reload(self) -> None:
        """Re-read the config file now, changed or not (SIGHUP)."""
        self._watcher.trigger()

    async def _reload(self) -> None:
        plan = await load_plan(self.config)
        if plan is not None:
            self.apply(plan)
        if self.hooks.on_reload is not None:
            self.hooks.on_reload(plan is not None)

    def apply(self, plan: ReloadPlan) -> None:
        """Put ``plan`` in force in one step: nothing here awaits, so no message or attempt
        sees half of it. Removed rooms stop (cursors kept); added rooms start tailing."""
        self.active, self.config = plan.active, plan.active.config
        for tailer in self.tailers.values():
            tailer.use_rules(plan.active.matcher, plan.active.routes)
        if self.sender is not None:
            self.sender.update_webhooks(self._own_webhooks())
        if self.workers is not None:
            self.workers.reload()
        if (plan.added or plan.removed) and self._spawn is None:
            log.warning("config reload: room changes take effect after a restart")
            return
        for name in plan.removed:
            self.tailers.pop(name, None)
            task = self._room_tasks.pop(name, None)
            if task is not None:
                task.cancel(msg="room removed from the config; its cursor is kept")
        for room in plan.added:
            assert self._spawn is not None
            self._spawn(room)
        self._check_budget()

    def _check_budget(self) -> None:
        """Say once (log, status page) when the budget cannot poll each room in time."""
        note = budget_note(self.config.roomlio, len(self.config.rooms))
        if note and note != self.polling_note:
            log.warning("%s", note)
        self.polling_note = note

    def _enqueued(self, added: list[Delivery]) -> None:
        """A tailer committed ``added`` (the senders were told by the hand-off): the hook
        hears of it."""
        if self.hooks.on_enqueued is not None:
            self.hooks.on_enqueued(added)

    async def _prune(self, store: Store, stop: asyncio.Event) -> None:
        keep = max(2 * self.config.roomlio.edit_lookback, 3600.0)
        while not stop.is_set():
            try:
                await store.prune(time.time() - keep)
            except StoreError as exc:
                log.warning("pruning the ledger failed: %s", exc)
            await sleep_unless(stop, PRUNE_INTERVAL)
