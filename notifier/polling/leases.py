"""Room leases: several instances share one set of rooms, each tailed by one at a time.

The pure core, ``plan``, says from what an instance holds and how many instances are
alive which rooms to give up and how many to claim, so that the work spreads evenly
(each holds at most ``ceil(rooms / live)``) and a new instance gets a fair share. The
shell, ``RoomKeeper``, runs the heartbeat: renew, rebalance, start and stop tailers.
Exclusivity itself is enforced by the store: a commit for a room whose lease expired is
refused (LeaseLost), so a paused process that wakes up cannot write with a stale lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from notifier.config import ClusterSettings
from notifier.errors import StoreError
from notifier.util.aio import sleep_unless

__all__ = ["LeasePlan", "LeaseStore", "RoomKeeper", "fair_share", "new_instance_id", "plan"]

log = logging.getLogger("notifier.leases")


def new_instance_id() -> str:
    """A name for this process, unique across hosts and restarts: host-pid-random."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@runtime_checkable
class LeaseStore(Protocol):
    """A store that shares rooms among instances (PostgreSQL); SQLite has no need."""

    async def heartbeat(self, ttl: float) -> tuple[set[str], int]:
        """Renew this instance and its leases: (rooms still held, live instances)."""

    async def claim_rooms(self, rooms: Sequence[str], limit: int, ttl: float) -> list[str]:
        """Take up to ``limit`` of ``rooms`` that no live instance holds."""

    async def release_rooms(self, rooms: Collection[str]) -> None:
        """Give up leases on ``rooms``."""

    async def leave(self) -> None:
        """Release every lease and claim and unregister this instance."""


def fair_share(rooms: int, live: int) -> int:
    """The most rooms one of ``live`` instances should hold."""
    return math.ceil(rooms / max(1, live))


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """What one heartbeat does: give these rooms up, then claim up to ``claim`` more."""

    release: tuple[str, ...]
    claim: int


def plan(held: Collection[str], rooms: int, live: int) -> LeasePlan:
    """Shed the rooms beyond the fair share (the last by name), or claim up to it (pure)."""
    share = fair_share(rooms, live)
    extra = len(held) - share
    if extra > 0:
        return LeasePlan(tuple(sorted(held)[-extra:]), 0)
    return LeasePlan((), share - len(held))


class RoomKeeper:
    """Holds this instance's leases and has each room it holds polled (``start``)."""

    def __init__(self, store: LeaseStore, rooms: Sequence[str], settings: ClusterSettings,
                 start: Callable[[str], asyncio.Future[None]]) -> None:
        self._store, self._rooms, self._settings = store, list(rooms), settings
        self._start = start
        self.tasks: dict[str, asyncio.Future[None]] = {}
        """The room tasks running now, by room name."""
        self._renewed = time.monotonic()
        """When the last heartbeat that succeeded began (this process's monotonic clock):
        the leases it renewed expire ``lease_ttl`` after that at the earliest."""

    def current(self) -> bool:
        """Whether this instance's leases were renewed within ``lease_ttl`` by its own
        clock. A process paused past that (GC, SIGSTOP, a frozen VM) wakes with its polls
        overdue; they wait for the next heartbeat, which keeps the rooms or stops them."""
        return time.monotonic() - self._renewed <= self._settings.lease_ttl

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat until ``stop`` (or cancellation); then stop every room and leave."""
        try:
            while not stop.is_set():
                await self._beat()
                await sleep_unless(stop, self._settings.heartbeat)
        finally:
            await self._stop_rooms(list(self.tasks))
            with contextlib.suppress(StoreError):
                await self._store.leave()

    async def _beat(self) -> None:
        ttl = self._settings.lease_ttl
        began = time.monotonic()
        try:
            held, live = await self._store.heartbeat(ttl)
        except StoreError as exc:
            log.warning("lease heartbeat failed: %s", exc)
            unrenewed = time.monotonic() - self._renewed
            if unrenewed > ttl and self.tasks:  # another instance may hold them now
                log.warning("lease lost on %d room(s): not renewed for %.1fs (lease_ttl "
                            "%gs); stopped tailing them until a heartbeat succeeds",
                            len(self.tasks), unrenewed, ttl)
                await self._stop_rooms(list(self.tasks))
            return
        self._renewed = began
        held &= set(self._rooms)
        # A task that ended lost its lease while tailing: it restarts with a fresh cursor
        # below if the lease is still this instance's.
        lost = [r for r in self.tasks if r not in held]
        if lost:
            log.warning("lease lost on %d room(s): another instance holds them now; stopped "
                        "tailing them", len(lost))
        await self._stop_rooms([r for r, t in self.tasks.items() if r not in held or t.done()])
        try:
            await self._rebalance(held, live)
        except StoreError as exc:
            log.warning("rebalancing rooms failed: %s", exc)

    async def _rebalance(self, held: set[str], live: int) -> None:
        step = plan(held, len(self._rooms), live)
        if step.release:
            await self._stop_rooms(step.release)
            await self._store.release_rooms(step.release)
            held -= set(step.release)
            log.info("rebalancing: gave up %d room(s) for %d live instance(s)",
                     len(step.release), live)
        for room in sorted(held):
            self._begin(room)
        free = [r for r in self._rooms if r not in held]
        claimed = await self._store.claim_rooms(free, step.claim, self._settings.lease_ttl)
        for room in claimed:
            self._begin(room)
        if claimed:
            log.info("claimed %d room(s); holding %d of %d", len(claimed), len(self.tasks),
                     len(self._rooms))

    def _begin(self, room: str) -> None:
        if room not in self.tasks:
            self.tasks[room] = self._start(room)

    async def _stop_rooms(self, rooms: Collection[str]) -> None:
        tasks = [self.tasks.pop(r) for r in rooms if r in self.tasks]
        for task in tasks:
            task.cancel(msg="room lease given up")
        await asyncio.gather(*tasks, return_exceptions=True)
