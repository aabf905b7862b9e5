"""The state file misbehaving: locked by another process, full, failing, corrupt or foreign.

While the store fails, the notifier keeps running and retries: the cursor does not move
past what was not committed, and nothing is skipped; once the store recovers, every event
arrives. A state file it cannot trust is refused at start, never reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from notifier.errors import StoreError
from notifier.runtime.service import ServiceHooks
from notifier.store.sqlite import SQLiteStore
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.chaos import (
    PATIENT,
    LogWatch,
    Traffic,
    assert_no_secrets,
    chaos_seed,
    deliveries_complete,
    measure,
    rounds,
    serve,
    write_config,
)
from tests.conftest import API_KEY, SECRET, TEST_ENV, Outcomes, notifier_command
from tests.repeats import unrecorded

pytestmark = pytest.mark.chaos
#: Seconds within which every version must arrive; RELIABILITY.md measured at most 2.3 s.
MAX_DELAY = 30.0

LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


async def test_a_state_file_locked_by_another_process_delays_but_loses_nothing(
        tmp_path, caplog):
    """Another process holds BEGIN EXCLUSIVE: commits and retries wait; nothing is lost."""
    caplog.set_level(logging.DEBUG)
    rng = random.Random()
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in ("r1", "r2"):
            emu.add_room(key=room)
        traffic = Traffic(emu, ["r1", "r2"], rng)
        config = write_config(tmp_path, emu.url, rx.url, rooms=["r1", "r2"],
                              delivery={**PATIENT})
        store = SQLiteStore(config.state, exclusive=True, busy_timeout=0.2)
        with LogWatch() as logs:
            async with serve(config, store=store) as run:
                traffic.step(6)
                await deliveries_complete(run, traffic, rx, timeout=20)
                rx.set_default_status("/crm", 503)  # retries pending while the lock is held
                traffic.step(6)
                await run.until(logs.wait_for(lambda w: w.count("failed (HTTP 503") >= 2))
                locker = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", LOCKER, config.state, stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE)
                assert locker.stdin is not None and locker.stdout is not None
                assert await locker.stdout.readline() == b"locked\n"
                traffic.step(6)
                await run.until(logs.wait_for(lambda w: w.count("database is locked") >= 6))
                rx.set_default_status("/crm", None)
                locker.stdin.write(b"release\n")
                await locker.stdin.drain()
                assert await locker.wait() == 0
                await deliveries_complete(run, traffic, rx, timeout=30)
    figures = measure("state file locked by another process", traffic, rx,
                      repeats=unrecorded(logs.records),
                      lock_errors=logs.count("database is locked"))
    figures.check(max_delay=MAX_DELAY)
    assert_no_secrets(caplog.text, "the logs")


async def test_a_full_disk_holds_the_cursor_and_loses_nothing_once_space_returns(
        tmp_path, caplog):
    """SQLITE_FULL on every commit: the cursor stays put; after space returns all arrive."""
    caplog.set_level(logging.DEBUG)
    rng = random.Random()
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="r1")
        traffic = Traffic(emu, ["r1"], rng)
        config = write_config(tmp_path, emu.url, rx.url, rooms=["r1"],
                              delivery={**PATIENT})
        store = SQLiteStore(config.state, exclusive=True)
        with LogWatch() as logs:
            async with serve(config, store=store) as run:
                traffic.step(5)
                await deliveries_complete(run, traffic, rx, timeout=20)
                await run.until(emu.wait_requests(len(emu.requests) + 2))
                before = await store.rooms()
                # The file may not grow any more: SQLite answers SQLITE_FULL, as on a full
                # disk. max_page_count is per connection, so it is set on the store's own.
                await store._run("test: fill the disk", _limit_pages)
                for i in range(6):  # bodies big enough to need new pages
                    traffic.post("r1", "refund", body=f"refund {i} " + "y" * 8000)
                await run.until(logs.wait_for(lambda w: w.count("disk full") >= 3))
                assert await store.rooms() == before, "the cursor moved past a failed commit"
                await store._run("test: free some space",
                                 lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
                await deliveries_complete(run, traffic, rx, timeout=30)
    figures = measure("disk full", traffic, rx, repeats=unrecorded(logs.records),
                      full_errors=logs.count("disk full"))
    figures.check(max_delay=MAX_DELAY)
    assert_no_secrets(caplog.text, "the logs")


def _limit_pages(conn: sqlite3.Connection) -> None:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


class FlakyStore:
    """Wraps a store; its calls fail at random (a disk that errs) while ``failing``."""

    CALLS = frozenset({"commit", "commit_page", "claim_due", "delivered", "reschedule", "release",
                        "dead_letter", "next_due", "load_room"})

    def __init__(self, inner: SQLiteStore, rng: random.Random, rate: float) -> None:
        self._inner, self._rng, self.rate = inner, rng, rate
        self.failing = True
        self.failures: Counter[str] = Counter()
        """Every failed call, by method."""
        self.random_failures: Counter[str] = Counter()
        """The failures drawn at random (not those of ``fail_next``), by method."""
        self.fail_next: Counter[str] = Counter()
        """Calls to fail for certain, by method, before any random failure."""

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if name not in self.CALLS:
            return method

        async def flaky(*args: Any, **kwargs: Any) -> Any:
            if self.fail_next[name] > 0:
                self.fail_next[name] -= 1
            elif self.failing and self._rng.random() < self.rate:
                self.random_failures[name] += 1
            else:
                return await method(*args, **kwargs)
            self.failures[name] += 1
            raise StoreError(f"{name} failed: disk I/O error (injected)")

        return flaky


async def test_random_store_failures_are_retried_and_lose_nothing(tmp_path, caplog, long_run):
    """Any store call may fail for a while; afterwards every event still arrives."""
    caplog.set_level(logging.DEBUG)
    seed = chaos_seed()
    rng = random.Random(seed)
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in ("r1", "r2", "r3"):
            emu.add_room(key=room)
        traffic = Traffic(emu, ["r1", "r2", "r3"], rng)
        config = write_config(tmp_path, emu.url, rx.url, rooms=["r1", "r2", "r3"],
                              delivery={**PATIENT})
        store = FlakyStore(SQLiteStore(config.state, exclusive=True), rng, rate=0.15)
        # each of these fails once for certain, before any drawn failure
        store.fail_next.update({"commit_page": 3, "claim_due": 3, "delivered": 2, "next_due": 2})
        async with serve(config, store=store) as run:  # type: ignore[arg-type]
            for _ in rounds(long_run, 20, 200):
                await _chatter(traffic, rx, rng)
            # The drawn failures are counted apart from the forced ones; the traffic goes
            # on (within a bound) until they are enough, so the check below holds by the
            # run, not by the luck of the draw, and fails if failures stop being drawn.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    while not _enough(store.random_failures):
                        await _chatter(traffic, rx, rng)
            store.failing = False  # the disk recovers
            await deliveries_complete(run, traffic, rx, timeout=30)
    figures = measure(f"random store failures, seed {seed}", traffic, rx,
                      repeats=unrecorded(caplog.records),
                      **{f"failed {k}": v for k, v in sorted(store.failures.items())},
                      drawn=sum(store.random_failures.values()))
    figures.check(max_delay=MAX_DELAY)  # duplicates only for outcomes not recorded
    assert _enough(store.random_failures), f"too few drawn faults: {store.random_failures}"
    assert_no_secrets(caplog.text, "the logs")


#: The random phase's own failures a run needs, in how many different store calls.
RANDOM_FAILURES, RANDOM_CALLS = 10, 3


def _enough(failures: Counter[str]) -> bool:
    return sum(failures.values()) >= RANDOM_FAILURES and len(+failures) >= RANDOM_CALLS


async def _chatter(traffic: Traffic, rx: WebhookReceiver, rng: random.Random) -> None:
    """One round of traffic, sometimes with a 503 from the receiver."""
    traffic.step(rng.randint(1, 3))
    if rng.random() < 0.3:
        rx.inject(Fault.status(503), times=rng.randint(1, 3))
    await asyncio.sleep(rng.uniform(0.02, 0.08))  # the pace of the chat


@pytest.mark.parametrize(("fails", "answers"), [
    ("reschedule", [503]), ("delivered", []), ("dead_letter", [400, 400])])
async def test_a_store_error_while_recording_an_attempt_does_not_strand_the_delivery(
        emulator, receiver, make_config, fails, answers):
    """If the outcome of an attempt cannot be saved, the delivery is tried again later,
    not left claimed (and unsent) until the next restart."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    for status in answers:
        receiver.inject(Fault.status(status), path="/crm")
    config = make_config(rooms=["r1"], delivery={"max_backoff": "50ms"}, rules=[
        {"name": "refunds", "keywords": ["refund"], "notify": ["crm"]}])
    store = FlakyStore(SQLiteStore(config.state, exclusive=True), random.Random(), rate=0)
    store.fail_next[fails] = 1
    outcomes = Outcomes()
    async with serve(config, store=store, hooks=ServiceHooks(on_outcome=outcomes)) as run:  # type: ignore[arg-type]
        await run.until(outcomes.wait_for(lambda o: len(o.items) >= 1))
        stats = await store.stats()
    assert store.failures[fails] == 1
    assert (stats.outbox, stats.dead_letters) == (0, 1 if fails == "dead_letter" else 0)
    assert [o.ok for o in outcomes.items] == [fails != "dead_letter"]
    assert len({a.webhook_id for a in receiver.attempts}) == 1
    if fails == "dead_letter":
        assert [a.status for a in receiver.attempts] == [400, 400]
    else:
        assert receiver.received, "the delivery never arrived"


# -- a state file that cannot be trusted is refused at start ------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.close()


def _ours(path: Path) -> None:
    async def create() -> None:
        async with SQLiteStore(str(path)):
            pass

    asyncio.run(create())


def _newer(path: Path) -> None:
    _ours(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.close()


def _no_meta(path: Path) -> None:
    _ours(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE meta")
    conn.close()


def _corrupt(path: Path) -> None:
    _ours(path)
    data = bytearray(path.read_bytes())
    page = 4096
    data[page:page * 3] = os.urandom(page * 2)  # the pages after the header page
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("spoil", "says"), [
    (_garbage, "not an SQLite database"),
    (_foreign, "not a roomlio-notifier state file"),
    (_newer, "newer notifier"),
    (_no_meta, "damaged"),
    (_corrupt, "corrupt"),
], ids=["garbage", "foreign sqlite", "newer schema", "no meta table", "corrupt pages"])
async def test_an_untrustworthy_state_file_is_refused_at_start_and_left_untouched(
        tmp_path, spoil, says):
    """`notifier run` exits 1 naming the file and the problem; the file is not changed."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, WebhookReceiver() as rx:
        emu.add_room(key="r1")
        path = write_config(tmp_path, emu.url, rx.url, rooms=["r1"], load=False)
        state = tmp_path / "state.db"
        await asyncio.to_thread(spoil, state)
        before = hashlib.sha256(state.read_bytes()).hexdigest()
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path), "--log-level", "DEBUG"),
            env={**os.environ, **TEST_ENV}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = err.decode()
    assert proc.returncode == 1, text
    assert "state" in text and str(state) in text and says in text, text
    assert "Traceback" not in text
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before, "the file was changed"
    assert emu.requests == [], "it polled Roomlio with a state file it cannot use"
    assert_no_secrets(text + out.decode(), "stderr")
