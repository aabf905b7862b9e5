"""Helpers for tests that run several `notifier run` processes on one PostgreSQL state.

``Cluster`` starts the processes (each logging to its own file); ``Traffic`` posts a
steady stream of matching messages, chatter and edits; the rest read what the emulator
and the receiver recorded: which instance polled which room and when, what arrived.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.conftest import TEST_ENV, config_text, notifier_command

__all__ = ["BEAT", "TAKEOVER", "TTL", "Cluster", "Traffic", "all_delivered", "holders_since",
           "received", "runs_per_room", "spread", "wait_until", "write_config"]

TTL, BEAT = 2.0, 0.4
#: The TTL, a heartbeat to notice, and slack for a loaded 2-core machine running the
#: emulator, the receiver and three instances at once.
TAKEOVER = TTL + BEAT + 5.0


class Cluster:
    """The notifier processes of one test, each logging to its own file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.procs: list[asyncio.subprocess.Process] = []
        self.killed: set[int] = set()
        """Pids a test killed (perhaps not reaped yet, so still without a returncode)."""

    @property
    def live(self) -> int:
        """How many of the processes are running."""
        return sum(p.returncode is None and p.pid not in self.killed for p in self.procs)

    async def start(self) -> asyncio.subprocess.Process:
        log = os.open(self.path.parent / f"instance{len(self.procs)}.log",
                      os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(self.path), "--log-level", "INFO"),
            env={**os.environ, **TEST_ENV}, stdin=asyncio.subprocess.DEVNULL, stderr=log)
        os.close(log)
        self.procs.append(proc)
        return proc

    def log(self, n: int) -> str:
        return (self.path.parent / f"instance{n}.log").read_text()

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            await asyncio.wait_for(proc.wait(), 30)


def write_config(tmp_path: Path, emu: RoomlioEmulator, rx: WebhookReceiver, rooms: list[str],
                 state: str, *, delivery: dict[str, Any] | None = None,
                 cluster: dict[str, Any] | None = None,
                 rules: list[dict[str, Any]] | None = None, **roomlio: Any) -> Path:
    """The instances' rules.yaml: fast fixed polling, a short lease TTL, patient retries;
    ``delivery``, ``cluster`` and keyword ``roomlio`` settings override those."""
    doc = yaml.safe_load(config_text(
        emu.url, rx.url, rooms=rooms, state=state, rules=rules,
        # fixed polling (no adaptive back-off): the tests watch which instance polls a room
        roomlio={"poll_interval": "250ms", "max_poll_interval": "250ms",
                 "edit_scan_interval": "1s", **roomlio},
        delivery={"max_attempts": 1000, "max_backoff": "200ms", **(delivery or {})}))
    doc["cluster"] = {"lease_ttl": f"{TTL}s", "heartbeat": f"{BEAT}s", **(cluster or {})}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Traffic:
    """A steady stream of matching messages, chatter and edits over the given rooms."""

    def __init__(self, emu: RoomlioEmulator, rooms: list[str], seed: int = 8) -> None:
        self.emu, self.rooms, self.rng = emu, rooms, random.Random(seed)
        self.latest: dict[str, str] = {}
        self.posted: list[dict[str, Any]] = []

    def burst(self, n: int) -> None:
        for _ in range(n):
            room = self.rng.choice(self.rooms)
            if self.rng.random() < 0.2:
                self.emu.post(room, "just chatting")
                continue
            message = self.emu.post(room, f"refund request {len(self.posted)}")
            self.posted.append(message)
            self.latest[message["id"]] = message["editedAt"]
            if self.rng.random() < 0.2:
                target = self.rng.choice(self.posted[-20:])
                edited = self.emu.edit(target["id"], f"{target['body']} (edited)")
                self.latest[target["id"]] = edited["editedAt"]

    async def run(self, seconds: float, per_tick: int = 4) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.burst(per_tick)
            await asyncio.sleep(0.1)  # the stream's own pace, not a wait for a condition

    def must_have(self) -> set[str]:
        return {f"{mid}@{edited}" for mid, edited in self.latest.items()}


def received(rx: WebhookReceiver) -> set[str]:
    return {f"{r.json['data']['message']['id']}@{r.json['data']['message']['editedAt']}"
            for r in rx.received if r.path == "/crm"}


async def all_delivered(rx: WebhookReceiver, traffic: Traffic, timeout: float = 60) -> None:
    await rx.wait_for(lambda r: received(r) >= traffic.must_have(), timeout=timeout)
    for r in rx.received:  # duplicates only ever with the same webhook-id and body
        assert r.webhook_id is not None


def runs_per_room(emu: RoomlioEmulator) -> dict[str, list[tuple[str, float, float]]]:
    """For each room, the runs of consecutive requests by one instance: (who, first, last)."""
    runs: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for record in emu.requests:
        if record.room is None or record.instance is None:
            continue
        room_runs = runs[record.room]
        if room_runs and room_runs[-1][0] == record.instance:
            room_runs[-1] = (record.instance, room_runs[-1][1], record.time)
        else:
            room_runs.append((record.instance, record.time, record.time))
    return runs


def holders_since(emu: RoomlioEmulator, since: float) -> dict[str, set[str]]:
    """Which rooms each instance polled after ``since`` (monotonic time)."""
    rooms: dict[str, set[str]] = defaultdict(set)
    for record in emu.requests:
        if record.time >= since and record.room and record.instance:
            rooms[record.instance].add(record.room)
    return rooms


async def wait_until(predicate: Any, timeout: float) -> None:
    """Poll a condition that other processes change (their polls, their log files)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - no event to await across processes
            await asyncio.sleep(0.05)


def spread(emu: RoomlioEmulator, since: float, instances: int) -> list[int]:
    return sorted(len(r) for r in holders_since(emu, since).values())[-instances:]
