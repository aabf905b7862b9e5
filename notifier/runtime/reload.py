"""Hot reload: notice a changed config file (or SIGHUP), validate it in full, plan the swap.

The running service applies a plan in one step that never awaits, so every message is
matched, and every attempt configured, by exactly one config: the old one or the new.
An invalid file changes nothing; its problems are logged and the old config stays.

What a reload changes at once: rules (from the next message), rooms (added ones start
tailing from their saved cursor or ``start_from``; removed ones stop, their cursors kept),
webhooks and delivery settings (from the next attempt). Other sections (``roomlio``,
``state``, ``server``, ``logging``, ``cluster``, ``ops_webhook``) keep their running
values until a restart, and the log says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from notifier.config import Config, Room
from notifier.delivery.formats import load_config
from notifier.errors import ConfigError
from notifier.polling.tailer import routes_for
from notifier.rules import Matcher, compile_rules
from notifier.util.aio import wait_any

__all__ = ["CompiledConfig", "ConfigWatcher", "ReloadPlan", "load_plan", "plan_reload"]

log = logging.getLogger("notifier.reload")

#: How often (seconds) the config file is looked at for changes.
POLL_INTERVAL = 1.0
#: The sections a reload applies; every other Config field waits for a restart.
LIVE_FIELDS = frozenset({"path", "rooms", "delivery", "webhooks", "rules"})


@dataclass(frozen=True)
class CompiledConfig:
    """A config with its rules compiled and its routes worked out: the service swaps the
    one in force as one object, so a message never meets half of a reload."""

    config: Config
    matcher: Matcher
    routes: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, config: Config) -> CompiledConfig:
        """Compile ``config``'s rules and routes."""
        return cls(config, compile_rules(config.rules), routes_for(config.rules))


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload changes: the config to put in force and the rooms to start and stop."""

    active: CompiledConfig
    """The config to put in force, compiled."""
    added: tuple[Room, ...]
    removed: tuple[str, ...]
    needs_restart: tuple[str, ...]
    """Sections that changed on disk but keep their running values."""


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """The plan to go from ``old`` to ``new`` (pure)."""
    fields = [f.name for f in dataclasses.fields(Config) if f.name not in LIVE_FIELDS]
    kept = {name: getattr(old, name) for name in fields}
    changed = tuple(name for name in fields if getattr(new, name) != kept[name])
    merged = dataclasses.replace(new, **kept)
    old_rooms = {room.name for room in old.rooms}
    new_rooms = {room.name for room in new.rooms}
    return ReloadPlan(
        CompiledConfig.of(merged),
        added=tuple(room for room in new.rooms if room.name not in old_rooms),
        removed=tuple(room.name for room in old.rooms if room.name not in new_rooms),
        needs_restart=changed,
    )


async def load_plan(old: Config) -> ReloadPlan | None:
    """Load and validate ``old.path`` again; None (problems logged) when it is invalid."""
    try:
        new = await asyncio.to_thread(load_config, old.path)
    except ConfigError as exc:
        log.error("config reload refused, the running config stays in force; %d problem(s):"
                  "\n%s", len(exc.problems), "\n".join(str(p) for p in exc.problems))
        return None
    plan = plan_reload(old, new)
    log.info("config reloaded: %d rule(s), %d webhook(s), %d room(s) (+%d, -%d)",
             len(new.rules), len(new.webhooks), len(new.rooms), len(plan.added),
             len(plan.removed))
    if plan.needs_restart:
        log.warning("config reload: changes to %s take effect after a restart",
                    ", ".join(plan.needs_restart))
    return plan


def fingerprint(path: str) -> tuple[int, int] | None:
    """The file's (mtime in ns, size), or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def digest(path: str) -> str | None:
    """A hash of the file's bytes, or None when it cannot be read."""
    try:
        with open(path, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    """Calls ``reload`` when the file's content changes, or at once on ``trigger``."""

    def __init__(self, path: str, reload: Callable[[], Awaitable[None]], *,
                 interval: float = POLL_INTERVAL) -> None:
        self._path, self._reload, self._interval = path, reload, interval
        self._seen = fingerprint(path)
        self._digest = digest(path)
        self._wake = asyncio.Event()
        self._forced = False

    def trigger(self) -> None:
        """Reload now, changed or not (SIGHUP)."""
        self._forced = True
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop``; a failing reload is logged, never fatal."""
        while not stop.is_set():
            if self._forced or self._changed():
                self._forced = False
                self._digest = digest(self._path)
                try:
                    await self._reload()
                except Exception:  # a bug in applying must not stop the notifier
                    log.exception("config reload failed; the running config stays in force")
            self._wake.clear()
            await wait_any(self._wake, stop, timeout=self._interval)

    def _changed(self) -> bool:
        seen = fingerprint(self._path)
        if seen == self._seen:
            return False
        self._seen = seen
        return seen is not None and digest(self._path) != self._digest
