"""Several `notifier run` processes on one PostgreSQL state: sharing, failover, fencing.

The failover tests are also chaos tests: ``pytest -m chaos --long`` repeats their faults
(kills, database restarts) as part of the soak; the default run does each once.

Real processes, a real PostgreSQL server (tests/pg.py), the emulator recording which
instance polled which room and when (the x-notifier-instance header).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.chaos import rounds
from tests.clusterutil import (
    TAKEOVER,
    TTL,
    Cluster,
    Traffic,
    all_delivered,
    holders_since,
    runs_per_room,
    spread,
    wait_until,
    write_config,
)
from tests.conftest import API_KEY, SECRET, TEST_ENV, notifier_command
from tests.pg import PgServer

pytestmark = pytest.mark.slow


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


async def _settled(emu: RoomlioEmulator, live: int, rooms: int) -> dict[str, set[str]]:
    """Wait for a 1s window in which ``live`` instances polled every room, each room by
    one of them; which rooms each polled in it."""
    async with asyncio.timeout(20):
        while True:
            mark = time.monotonic()
            await asyncio.sleep(1.0)  # the window observed, not a wait for a condition
            held = holders_since(emu, mark)
            if len(held) == live and sum(len(r) for r in held.values()) == rooms:
                return held


async def _kill_busiest(emu: RoomlioEmulator, cluster: Cluster, traffic: Traffic) -> float:
    """SIGKILL the instance tailing the most rooms; seconds until the others poll them."""
    held = await _settled(emu, cluster.live, len(traffic.rooms))
    victim_id, victim_rooms = max(held.items(), key=lambda kv: len(kv[1]))
    pid = int(victim_id.split("-")[-2])
    os.kill(pid, signal.SIGKILL)
    cluster.killed.add(pid)
    killed_at = time.monotonic()
    await traffic.run(2.0)
    await wait_until(lambda: victim_rooms <= set().union(*(
        r for who, r in holders_since(emu, killed_at).items() if who != victim_id)),
        TAKEOVER)
    return time.monotonic() - killed_at


@pytest.mark.chaos
async def test_sigkill_of_an_instance_hands_its_rooms_over_within_the_lease_ttl(
        tmp_path: Path, pg_url: str, long_run: bool) -> None:
    """The rooms of a killed instance are polled by the others within the TTL; nothing is
    lost; duplicates carry the same webhook-id. The soak kills again and again, a
    replacement joining before each kill."""
    rooms = [f"room{i:02d}" for i in range(30)]
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        cluster = Cluster(write_config(tmp_path, emu, rx, rooms, pg_url))
        traffic = Traffic(emu, rooms)
        takeovers: list[float] = []
        try:
            for _ in range(3):
                await cluster.start()
            await traffic.run(3.0)
            for i in rounds(long_run, 1, 6):
                if i:
                    await cluster.start()  # three instances share the rooms again
                takeovers.append(await _kill_busiest(emu, cluster, traffic))
            await all_delivered(rx, traffic)
        finally:
            await cluster.stop()
    print(f"\n{len(takeovers)} SIGKILL(s): rooms taken over in "
          f"{', '.join(f'{t:.2f}s' for t in takeovers)} (lease_ttl {TTL:g}s)")
    assert takeovers and max(takeovers) <= TAKEOVER, takeovers
    bodies: dict[str, bytes] = {}
    for r in rx.received:
        assert bodies.setdefault(str(r.webhook_id), r.body) == r.body, "one id, two bodies"


@pytest.mark.chaos
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
            # what it sent just before it stopped is still in the emulator's socket: let
            # the emulator read it, so that "since stopped_at" holds only the other's polls
            await asyncio.sleep(0.2)
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


async def test_a_woken_instance_polls_no_room_before_it_renews_its_lease(
        tmp_path: Path, pg_url: str) -> None:
    """SIGSTOP between polls (Roomlio answers at once), past the lease TTL, then SIGCONT:
    the woken instance's overdue polls do not go out, since by its own clock its leases
    were not renewed within lease_ttl; it polls again only the rooms it claims anew."""
    rooms = [f"room{i:02d}" for i in range(8)]
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        cluster = Cluster(write_config(tmp_path, emu, rx, rooms, pg_url,
                                       poll_interval="100ms"))
        try:
            paused = await cluster.start()
            await wait_until(lambda: len(holders_since(emu, 0)) == 1 and len(
                next(iter(holders_since(emu, 0).values()))) == 8, 15)
            paused.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.2)  # a poll it sent just before is read by the emulator
            stopped_at = time.monotonic()
            await cluster.start()
            await wait_until(lambda: len(holders_since(emu, stopped_at)) == 1 and len(
                next(iter(holders_since(emu, stopped_at).values()))) == 8, TTL + 10)
            paused.send_signal(signal.SIGCONT)
            await wait_until(lambda: "lease lost" in cluster.log(0), 10)
            # the rooms spread again: both poll, the woken one only the rooms it claimed
            lost_at = time.monotonic()
            await wait_until(lambda: len(holders_since(emu, lost_at)) == 2, 10)
        finally:
            await cluster.stop()
    for room, room_runs in runs_per_room(emu).items():
        # the paused holder, the other, then perhaps the woken one again: never interleaved
        assert len(room_runs) <= 3, (room, room_runs)


@pytest.mark.chaos
async def test_database_restart_under_load_loses_nothing(
        tmp_path: Path, own_pg_server: PgServer, long_run: bool) -> None:
    """The database stops and starts again while two instances work: they reconnect and
    every matching version still arrives. The soak restarts it again and again."""
    rooms = [f"room{i:02d}" for i in range(10)]
    url = own_pg_server.create_database()
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
            # both instances up and delivering before the first stop: on a loaded machine
            # their start can take longer than the traffic above (a stop then meets no one,
            # or one still connecting, which then exits: the state is unreachable at start)
            await wait_until(lambda: len(holders_since(emu, 0)) == 2, 60)
            await all_delivered(rx, traffic, timeout=60)
            for _ in rounds(long_run, 1, 5):
                await asyncio.to_thread(own_pg_server.stop)
                await traffic.run(1.5)
                await asyncio.to_thread(own_pg_server.start)
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
