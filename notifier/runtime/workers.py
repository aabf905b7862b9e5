"""Delivery worker processes (``delivery.workers: N``): the runner's POSTs on more cores.

A POST costs the notifier about as much CPU as everything else an event needs together
(parse, match, store, sign), and one Python process runs on one core. With workers, the
runner keeps polling, matching and committing, and N child processes claim and POST the
deliveries of the webhooks ``delivered_by_workers`` names from the same SQLite outbox
(each claim is a transaction, so a row goes to one process). The runner keeps the webhooks with a
``rate_limit``, a ``group_wait`` or ``ordered`` (their limits hold per process).

Supervision: a worker that exits while the runner runs is logged, its claims are released
(its deliveries are sent again, never lost) and it is started again after a pause that
doubles up to a minute. At shutdown the runner closes each worker's stdin; the worker
finishes its POSTs within ``delivery.shutdown_grace`` and releases the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable

from notifier.config import Config
from notifier.delivery.sender import AttemptReport, DeliveryOutcome
from notifier.errors import StoreError
from notifier.runtime.worker import decode_report, delivered_by_workers
from notifier.store import Store
from notifier.util.aio import sleep_unless
from notifier.util.backoff import Backoff

__all__ = ["DeliveryWorkers", "delivered_by_workers"]

log = logging.getLogger("notifier.delivery")

#: The longest pause before a worker that keeps exiting is started again.
MAX_RESTART_DELAY = 60.0
#: Seconds beyond the grace period a stopping worker gets before it is killed.
STOP_MARGIN = 5.0


class DeliveryWorkers:
    """Starts, feeds, supervises and stops the delivery worker processes."""

    def __init__(self, config: Config, store: Store, instance: str, *, log_level: str,
                 log_format: str,
                 on_outcome: Callable[[DeliveryOutcome], None] | None = None,
                 on_attempt: Callable[[AttemptReport], None] | None = None) -> None:
        self._config = config
        self._store = store
        self._instance = instance
        self._logging = (log_level, log_format)
        self._on_outcome = on_outcome
        self._on_attempt = on_attempt
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._poke_pending = False
        self._stopping = asyncio.Event()

    @property
    def count(self) -> int:
        return self._config.delivery.workers

    async def run(self) -> None:
        """Keep every worker running until ``shutdown``."""
        async with asyncio.TaskGroup() as group:
            for index in range(self.count):
                group.create_task(self._supervise(index), name=f"delivery worker {index}")

    async def _supervise(self, index: int) -> None:
        restarts, generation = Backoff(base=1.0, cap=MAX_RESTART_DELAY), 0
        while not self._stopping.is_set():
            generation += 1
            instance = f"{self._instance}-w{index}.{generation}"
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "notifier.runtime.worker", self._config.path,
                instance, *self._logging,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self._procs[index] = proc
            await self._read(proc)
            code = await proc.wait()
            self._procs.pop(index, None)
            await self._release(instance)
            if self._stopping.is_set():
                return
            delay = restarts.next()
            log.error("delivery worker %d exited with status %s; its deliveries were "
                      "released; starting it again in %.0fs", index, code, delay)
            await sleep_unless(self._stopping, delay)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                report = decode_report(line)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("delivery worker: unreadable report (%s)", type(exc).__name__)
                continue
            if isinstance(report, DeliveryOutcome):
                if self._on_outcome is not None:
                    self._on_outcome(report)
            elif self._on_attempt is not None:
                self._on_attempt(report)

    async def _release(self, instance: str) -> None:
        while True:
            try:
                await self._store.release_claims(instance)
                return
            except StoreError as exc:
                log.error("cannot release the claims of a delivery worker: %s; "
                          "trying again in 5s", exc)
                await asyncio.sleep(5.0)

    def poke(self) -> None:
        """New deliveries were committed: tell every worker, once per event-loop turn."""
        if not self._poke_pending and self._procs:
            self._poke_pending = True
            asyncio.get_running_loop().call_soon(self._send, b"poke\n")

    def reload(self) -> None:
        """The runner took a new config: workers read it again."""
        self._send(b"reload\n")

    def _send(self, line: bytes) -> None:
        self._poke_pending = False
        for proc in self._procs.values():
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.write(line)

    async def shutdown(self) -> None:
        """Stop every worker in order; kill those still running after the grace period."""
        self._stopping.set()
        procs = list(self._procs.values())
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        waits = [asyncio.create_task(proc.wait()) for proc in procs]
        if not waits:
            return
        _, late = await asyncio.wait(waits, timeout=self._config.delivery.shutdown_grace
                                     + STOP_MARGIN)
        for proc in procs:
            if proc.returncode is None:
                log.error("delivery worker %d did not stop in time: killed", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if late:
            await asyncio.wait(late)
