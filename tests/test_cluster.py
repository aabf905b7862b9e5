"""Several `notifier run` processes on one PostgreSQL state: sharing, failover, fencing.

Real processes, a real PostgreSQL server (tests/pg.py), the emulator recording which
instance polled which room and when (the x-notifier-instance header).
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

import pytest
import yaml

from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command
from tests.pg import PgServer, started_server

pytestmark = pytest.mark.slow

TTL, BEAT = 2.0, 0.4
#: The TTL, a heartbeat to notice, and slack for a loaded 2-core machine running the
#: emulator, the receiver and three instances at once.
TAKEOVER = TTL + BEAT + 5.0


class Cluster:
    """The notifier processes of one test, each logging to its own file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.procs: list[asyncio.subprocess.Process] = []

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
                 state: str, **roomlio: Any) -> Path:
    doc = yaml.safe_load(config_text(
        emu.url, rx.url, rooms=rooms, state=state,
        # fixed polling (no adaptive back-off): the tests watch which instance polls a room
        roomlio={"poll_interval": "250ms", "max_poll_interval": "250ms",
                 "edit_scan_interval": "1s", **roomlio},
        delivery={"max_attempts": 1000, "max_backoff": "200ms"}))
    doc["cluster"] = {"lease_ttl": f"{TTL}s", "heartbeat": f"{BEAT}s"}
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


async def test_three_instances_share_sixty_rooms_one_tailer_at_a_time(
        tmp_path: Path, pg_url: str) -> None:
    """Every matching version arrives; each room is tailed by one instance at a time; the
    rooms end up spread evenly."""
    rooms = [f"room{i:02d}" for i in range(60)]
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        cluster = Cluster(write_config(tmp_path, emu, rx, rooms, pg_url))
        traffic = Traffic(emu, rooms)
        try:
            for _ in range(3):
                await cluster.start()
            await traffic.run(6.0)
            await all_delivered(rx, traffic)
            mark = time.monotonic()
            await asyncio.sleep(1.0)  # a window in which to observe the settled spread
            counts = spread(emu, mark, 3)
        finally:
            await cluster.stop()
    assert [p.returncode for p in cluster.procs] == [0, 0, 0]
    assert counts[0] >= 15 and counts[-1] <= 25 and sum(counts) == 60, counts
    for room, room_runs in runs_per_room(emu).items():
        # one tailer at a time: a room changes hands a few times while the instances
        # join, never interleaving two instances' polls
        assert len(room_runs) <= 3, (room, room_runs)
    assert "schema version" in cluster.log(0) + cluster.log(1) + cluster.log(2)


async def test_sigkill_of_an_instance_hands_its_rooms_over_within_the_lease_ttl(
        tmp_path: Path, pg_url: str) -> None:
    """The rooms of a killed instance are polled by the others within the TTL; nothing is
    lost; duplicates carry the same webhook-id."""
    rooms = [f"room{i:02d}" for i in range(30)]
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        cluster = Cluster(write_config(tmp_path, emu, rx, rooms, pg_url))
        traffic = Traffic(emu, rooms)
        try:
            for _ in range(3):
                await cluster.start()
            await traffic.run(3.0)
            mark = time.monotonic()
            await wait_until(lambda: len(holders_since(emu, mark)) == 3 and sum(
                spread(emu, mark, 3)) == 30, 20)
            victim_id = max(holders_since(emu, mark).items(), key=lambda kv: len(kv[1]))[0]
            pid = int(victim_id.split("-")[-2])
            victim_rooms = holders_since(emu, mark)[victim_id]
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await traffic.run(2.0)
            await wait_until(lambda: victim_rooms <= set().union(*(
                r for who, r in holders_since(emu, killed_at).items() if who != victim_id)),
                TAKEOVER)
            taken_over = time.monotonic() - killed_at
            await all_delivered(rx, traffic)
        finally:
            await cluster.stop()
    assert taken_over <= TAKEOVER
    bodies: dict[str, bytes] = {}
    for r in rx.received:
        assert bodies.setdefault(str(r.webhook_id), r.body) == r.body, "one id, two bodies"


async def test_paused_instance_cannot_write_with_its_stale_lease(
        tmp_path: Path, pg_url: str) -> None:
    """SIGSTOP past the lease TTL, then SIGCONT: the woken instance's writes are refused,
    it stops tailing the rooms it lost, and nothing is lost."""
    rooms = [f"room{i:02d}" for i in range(8)]
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        # a slow Roomlio keeps a poll in flight when the process is stopped
        emu.set_latency(0.3)
        cluster = Cluster(write_config(tmp_path, emu, rx, rooms, pg_url,
                                       poll_interval="100ms"))
        traffic = Traffic(emu, rooms)
        try:
            paused = await cluster.start()
            await wait_until(lambda: len(holders_since(emu, 0)) == 1 and len(
                next(iter(holders_since(emu, 0).values()))) == 8, 15)
            paused.send_signal(signal.SIGSTOP)
            stopped_at = time.monotonic()
            await cluster.start()
            traffic.burst(20)
            await wait_until(lambda: len(holders_since(emu, stopped_at)) == 1 and len(
                next(iter(holders_since(emu, stopped_at).values()))) == 8, TTL + 10)
            traffic.burst(20)
            paused.send_signal(signal.SIGCONT)
            await traffic.run(2.0)
            await all_delivered(rx, traffic)
            await wait_until(lambda: "lease lost" in cluster.log(0), 10)
        finally:
            await cluster.stop()
    assert "lease lost" in cluster.log(0)
    for room, room_runs in runs_per_room(emu).items():
        # paused holder, then the other, then (rebalanced) perhaps the woken one again:
        # never the two interleaved
        assert len(room_runs) <= 3, (room, room_runs)
    bodies: dict[str, bytes] = {}
    for r in rx.received:
        assert bodies.setdefault(str(r.webhook_id), r.body) == r.body


@pytest.fixture
def own_server() -> Any:
    """A PostgreSQL server of this test's own, to restart without disturbing the others."""
    server = started_server()
    try:
        yield server
    finally:
        server.destroy()


async def test_database_restart_under_load_loses_nothing(tmp_path: Path,
                                                         own_server: PgServer) -> None:
    """The database stops and starts again while two instances work: they reconnect and
    every matching version still arrives."""
    rooms = [f"room{i:02d}" for i in range(10)]
    url = own_server.create_database()
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        cluster = Cluster(write_config(tmp_path, emu, rx, rooms, url))
        traffic = Traffic(emu, rooms)
        try:
            for _ in range(2):
                await cluster.start()
            await traffic.run(2.0)
            await asyncio.to_thread(own_server.stop)
            await traffic.run(1.5)
            await asyncio.to_thread(own_server.start)
            await traffic.run(2.0)
            await all_delivered(rx, traffic, timeout=90)
        finally:
            await cluster.stop()
    assert [p.returncode for p in cluster.procs] == [0, 0]
    assert "failed" in cluster.log(0) + cluster.log(1)  # the outage was felt, and survived


async def test_status_shows_instances_rooms_and_lease_ages_from_any_host(
        tmp_path: Path, pg_url: str) -> None:
    """`notifier status` lists both live instances with their rooms, and the outbox depth,
    without the database password."""
    rooms = [f"room{i:02d}" for i in range(6)]
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        path = write_config(tmp_path, emu, rx, rooms, pg_url)
        cluster = Cluster(path)
        try:
            for _ in range(2):
                await cluster.start()
            await wait_until(lambda: spread(emu, time.monotonic() - 0.5, 2) == [3, 3], 15)
            proc = await asyncio.create_subprocess_exec(
                *notifier_command("status", "--config", str(path)),
                env={**os.environ, **TEST_ENV}, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT)
            out = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
        finally:
            await cluster.stop()
    assert proc.returncode == 0, out
    assert "instances: 2 live, 6 room(s) leased" in out
    assert out.count("3 room(s)") == 2 and "lease age" in out and "outbox: " in out
    assert "pg-secret" not in out
