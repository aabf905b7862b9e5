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
from pathlib import Path

import pytest

from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.chaos import (
    PATIENT,
    ROUTES,
    Traffic,
    accepted_keys,
    assert_no_secrets,
    chaos_seed,
    crashed,
    measure,
    rounds,
    write_config,
)
from tests.conftest import API_KEY, SECRET, TEST_ENV, notifier_command

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


async def test_sigkill_at_random_moments_loses_no_event(tmp_path, long_run):
    """Killed mid-fetch, mid-commit or mid-delivery, every matching version still arrives."""
    kills, seed = _kills(long_run), chaos_seed()
    rng = random.Random(seed)
    log = tmp_path / "stderr.log"
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in ROOMS:
            emu.add_room(key=room)
        emu.set_latency(0.01)
        traffic = Traffic(emu, ROOMS, rng)
        path = write_config(tmp_path, emu.url, rx.url, rooms=ROOMS, load=False,
                            roomlio={"page_size": 3, "edit_scan_interval": "100ms"},
                            delivery=PATIENT)
        made = 0
        for _ in rounds(long_run, kills, kills):
            traffic.step(rng.randint(3, 12))
            rx.inject(Fault.delay(rng.uniform(0, 0.05)), path="/crm", times=rng.randint(1, 5))
            rx.inject(Fault.status(503), path="/crm", times=rng.randint(1, 2))
            proc = await _start(path, log)
            await asyncio.sleep(rng.uniform(0.3, 1.2))  # a random moment to crash at
            proc.kill()
            assert await proc.wait() == -signal.SIGKILL
            made += 1
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
    measure(f"SIGKILL x{made}, seed {seed}", traffic, rx, repeats=crashed("SIGKILLs"), kills=made,
            messages=len(traffic.current), versions=len(traffic.versions)).check()
    assert_no_secrets(log.read_text(errors="replace"), "stderr at DEBUG")


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
                            delivery={**PATIENT, "shutdown_grace": "300ms",
                                      "max_in_flight": 4})
        cut = 0
        made = 0
        for _ in rounds(long_run, stops, stops):
            traffic.step(rng.randint(10, 25), edit_share=0.1)
            # some answers come within the grace period, some long after it
            for _ in range(30):
                rx.inject(Fault.delay(rng.choice([0.05, 0.2, 2.0])), times=1)
            proc = await _start(path, log)
            so_far = len(rx.received)
            await rx.wait_for(lambda r, n=so_far: len(r.received) > n, timeout=30)
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
            assert time.monotonic() - began < 10, "the grace period was not kept"
            cut = len(rx.late)
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
            cut_mid_request=cut).check()
    assert cut > 0, "no request was ever cut by a stop: the test did not test"
    assert_no_secrets(log.read_text(errors="replace"), "stderr at DEBUG")

