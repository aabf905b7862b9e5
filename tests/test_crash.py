"""At-least-once across crashes: SIGKILL `notifier run` at random moments, lose nothing;
SIGTERM it mid-burst, again and again: it exits 0 and counts nothing half-sent as sent.

``pytest --long`` (or NOTIFIER_CRASH_KILLS=N) kills it more often; NOTIFIER_CHAOS_SEED
(or NOTIFIER_CRASH_SEED) replays a run's random choices.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from notifier.testing import Fault, Received, RoomlioEmulator, WebhookReceiver
from tests.chaos import (
    PATIENT,
    ROUTES,
    Traffic,
    accepted_keys,
    assert_no_secrets,
    chaos_seed,
    measure,
    rounds,
    write_config,
)
from tests.conftest import API_KEY, SECRET, TEST_ENV, notifier_command
from tests.repeats import crashed

pytestmark = pytest.mark.chaos
ROOMS = ["r1", "r2", "r3"]


def _kills(long_run: bool) -> int:
    return int(os.environ.get("NOTIFIER_CRASH_KILLS", "60" if long_run else "12"))


async def _start(path: Path, log: Path) -> asyncio.subprocess.Process:
    """`notifier run` at DEBUG, its stderr appended to ``log`` (grepped for secrets)."""
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path), "--log-level", "DEBUG"),
            env={**os.environ, **TEST_ENV}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=stderr)


#: The moments a SIGKILL lands in, in turn: while the emulator holds a RoomHistory request,
#: while the receiver holds a POST, or just after the process committed new events.
MOMENTS = ("mid-fetch", "mid-POST", "after a commit")
#: How long the emulator or the receiver holds the request the kill lands in: far longer
#: than the kill takes to follow, shorter than roomlio.request_timeout (30 s).
HOLD = 5.0
#: delivery.timeout in these configs (tests/conftest.py): a POST older than this is no
#: longer awaited by the notifier, so a kill after it would not be mid-POST.
DELIVERY_TIMEOUT = 2.0


def _events(state: Path) -> int:
    """Committed events in the state file (0 before it exists)."""
    if not state.exists():
        return 0
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:  # created but not yet migrated
        return 0
    finally:
        conn.close()


async def _under_way(moment: str, emu: RoomlioEmulator, rx: WebhookReceiver,
                     state: Path, committed: int) -> Callable[[], bool]:
    """Wait (bounded) until ``moment`` is under way in the process just started; return a
    check that it still is, to be called right before the kill."""
    requests, attempts = len(emu.requests), len(rx.attempts)

    def fetching() -> bool:
        return any(r.fault == "delay" and not r.done for r in emu.requests[requests:])

    def posting() -> bool:
        now = time.monotonic()
        return any(a.fault == "delay" and a.status is None and a not in rx.late
                   and now - a.at < DELIVERY_TIMEOUT for a in rx.attempts[attempts:])

    if moment == "mid-fetch":
        await emu.wait_for(lambda e: fetching(), timeout=30)
        return fetching
    if moment == "mid-POST":
        await rx.wait_for(lambda r: posting(), timeout=30)
        return posting
    async with asyncio.timeout(30):
        # another process writes the file: there is nothing to await but its contents
        while await asyncio.to_thread(_events, state) <= committed:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return lambda: True


def _prepare(moment: str, emu: RoomlioEmulator, rx: WebhookReceiver, traffic: Traffic,
             rng: random.Random) -> None:
    """Traffic for one life of the process, and the faults that hold its kill's moment."""
    traffic.step(rng.randint(3, 12))
    traffic.post(kind="refund")  # something to commit and POST, whatever the draw
    if moment == "mid-fetch":
        emu.inject(Fault.delay(HOLD))
    if moment == "mid-POST":
        rx.clear_faults()
        rx.inject(Fault.delay(HOLD))  # its first POST is held
    rx.inject(Fault.delay(rng.uniform(0, 0.05)), path="/crm", times=rng.randint(1, 5))
    rx.inject(Fault.status(503), path="/crm", times=rng.randint(1, 2))


async def test_sigkill_at_random_moments_loses_no_event(tmp_path, long_run):
    """Killed mid-fetch, mid-POST or just after a commit, each seen happening before the
    kill, over and over: every matching version still arrives."""
    kills, seed = _kills(long_run), chaos_seed()
    rng = random.Random(seed)
    log, state = tmp_path / "stderr.log", tmp_path / "state.db"
    landed: Counter[str] = Counter()
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in ROOMS:
            emu.add_room(key=room)
        emu.set_latency(0.01)
        traffic = Traffic(emu, ROOMS, rng)
        path = write_config(tmp_path, emu.url, rx.url, rooms=ROOMS, load=False,
                            roomlio={"page_size": 3, "edit_scan_interval": "100ms"},
                            delivery=PATIENT)
        for i in rounds(long_run, kills, kills):
            moment = MOMENTS[i % len(MOMENTS)]
            _prepare(moment, emu, rx, traffic, rng)
            committed = await asyncio.to_thread(_events, state)
            proc = await _start(path, log)
            still = await _under_way(moment, emu, rx, state, committed)
            await asyncio.sleep(rng.uniform(0, 0.05))  # a random moment within it
            assert still(), f"kill {i}: the {moment} moment was over before the kill"
            proc.kill()
            landed[moment] += 1
            assert await proc.wait() == -signal.SIGKILL
        emu.clear_faults()
        rx.clear_faults()
        before = len(emu.requests)
        final = await _start(path, log)
        try:
            await emu.wait_requests(before + 1, timeout=30)  # up and polling
            await rx.wait_for(lambda r: not traffic.missing(r), timeout=60)
        except TimeoutError:
            pass  # the figures say what is missing
        finally:
            final.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(final.wait(), 30) == 0
    made = sum(landed.values())
    measure(f"SIGKILL x{made}, seed {seed}", traffic, rx, repeats=crashed("SIGKILLs"),
            **landed, messages=len(traffic.current), versions=len(traffic.versions)).check()
    assert made == kills and all(landed[m] >= kills // len(MOMENTS) for m in MOMENTS), landed
    assert_no_secrets(log.read_text(errors="replace"), "stderr at DEBUG")


#: delivery.shutdown_grace of the SIGTERM test, in seconds.
GRACE = 0.3


async def _held(rx: WebhookReceiver, since: int, age: float) -> Received:
    """Wait (bounded) for a POST of the process started at attempt ``since`` that the
    receiver has held for ``age`` seconds and still holds. Only a 2 s hold is still held
    then, so a stop with a grace of GRACE must cut it."""
    async with asyncio.timeout(30):
        while True:
            now = time.monotonic()
            for a in rx.attempts[since:]:
                if (a.fault == "delay" and a.status is None and now - a.at >= age
                        and not any(x is a for x in rx.late)):
                    return a
            # the condition is the passing of time: no request need arrive to change it
            await asyncio.sleep(0.02)


def _unsettled(state: Path, traffic: Traffic, received: set[tuple[str, str, str]]) -> list[str]:
    """Committed deliveries that are neither accepted by the receiver nor still in the
    outbox (or the dead letters): ones counted as sent without a 2xx."""
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        committed = conn.execute("SELECT message FROM events").fetchall()
        pending = conn.execute(
            "SELECT t.webhook, e.message FROM outbox AS t JOIN events AS e ON e.seq = t.event_seq"
            " UNION ALL SELECT t.webhook, e.message FROM dead_letters AS t"
            " JOIN events AS e ON e.seq = t.event_seq").fetchall()
    finally:
        conn.close()
    def version(text: str) -> tuple[str, str]:
        message = json.loads(text)
        return str(message["id"]), str(message["editedAt"])

    kept = {(webhook, *version(text)) for webhook, text in pending}
    wrong = []
    for (text,) in committed:
        mid, edited = version(text)
        for webhook in ROUTES[traffic.versions[mid, edited].kind]:
            key = (webhook, mid, edited)
            if key not in kept and key not in received:
                wrong.append(str(key))
    return wrong


async def test_sigterm_mid_burst_again_and_again_exits_zero_and_loses_nothing(
        tmp_path, long_run):
    """SIGTERM while slow requests are in flight, many times: exit 0 each time; whatever
    got no 2xx stays in the outbox; in the end everything arrives."""
    stops, seed = (30 if long_run else 5), chaos_seed()
    rng = random.Random(seed)
    log = tmp_path / "stderr.log"
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in ROOMS:
            emu.add_room(key=room)
        traffic = Traffic(emu, ROOMS, rng)
        path = write_config(tmp_path, emu.url, rx.url, rooms=ROOMS, load=False,
                            delivery={**PATIENT, "shutdown_grace": f"{GRACE}s",
                                      "max_in_flight": 4})
        made = 0
        for _ in rounds(long_run, stops, stops):
            traffic.step(rng.randint(10, 25), edit_share=0.1)
            # some answers come within the grace period, some long after it (every third)
            for k in range(30):
                rx.inject(Fault.delay(2.0 if k % 3 == 2 else rng.choice([0.05, 0.2])))
            since = len(rx.attempts)
            proc = await _start(path, log)
            so_far = len(rx.received)
            await rx.wait_for(lambda r, n=so_far: len(r.received) > n, timeout=30)
            held = await _held(rx, since, GRACE - 0.05)
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
            assert time.monotonic() - began < 10, "the grace period was not kept"
            # the POST held at the stop was cut: the receiver answered after the client left
            await rx.wait_for(lambda r, h=held: any(a is h for a in r.late), timeout=10)
            rx.clear_faults()
            wrong = _unsettled(tmp_path / "state.db", traffic, accepted_keys(rx))
            assert not wrong, f"counted as sent without a 2xx: {wrong[:5]}"
            made += 1
        final = await _start(path, log)
        try:
            await rx.wait_for(lambda r: not traffic.missing(r), timeout=60)
        except TimeoutError:
            pass  # the figures say what is missing
        finally:
            final.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(final.wait(), 30) == 0
    measure(f"SIGTERM x{made} mid-burst, seed {seed}", traffic, rx,
            repeats=crashed("stops that cut requests"), stops=made,
            cut_mid_request=len(rx.late)).check()
    assert_no_secrets(log.read_text(errors="replace"), "stderr at DEBUG")

