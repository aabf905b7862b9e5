"""The circuit breaker end to end, with `notifier run` as a user runs it: a blip of a second
costs seconds, not a minute (also across a kill -9), and a receiver down for long sees
only the breaker's probes, not the backlog.

The retry schedule is the default one (5s, 5m, 30m, ...), as are the breaker's window,
threshold and minimum of attempts: what a user gets without tuning anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import (
    API_KEY,
    SECRET,
    TEST_ENV,
    config_text,
    notifier_command,
    running,
)

pytestmark = pytest.mark.chaos

#: A matching message every this many seconds (20 a second: a steady stream).
EVERY = 0.05
#: Every event pending when the receiver came back must arrive within this (seconds):
#: the first probe comes about a second after the breaker opens (less than 2s with
#: jitter), then the backlog goes at once. The retry schedule's first step (5s) is
#: longer, so a recovery that waited for it would miss the bound.
BOUND = 3.5
#: The blip: shorter than the first retry step, so only the breaker can make it quick.
BLIP = 1.2


class Stream:
    """Posts a matching message every EVERY seconds; remembers when each was posted."""

    def __init__(self, emulator: RoomlioEmulator, every: float = EVERY) -> None:
        self._emulator = emulator
        self._every = every
        self.posted: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        n = 0
        while True:
            message = self._emulator.post("r1", f"refund please, order {n}")
            self.posted[message["id"]] = time.monotonic()
            n += 1
            await asyncio.sleep(self._every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    """Await a condition on in-process state that has no event of its own."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - in-memory state, no event to await
            await asyncio.sleep(0.01)


def first_arrivals(receiver: WebhookReceiver) -> dict[str, float]:
    """When each message's event was first accepted (monotonic), by message id."""
    seen: dict[str, float] = {}
    for record in receiver.received:
        seen.setdefault(record.json["data"]["message"]["id"], record.at)
    return seen


def failed(receiver: WebhookReceiver) -> int:
    """Requests answered with an error."""
    return sum(1 for a in receiver.attempts if a.status is not None and a.status >= 500)


def write_config(tmp_path: Path, emulator: RoomlioEmulator, receiver: WebhookReceiver,
                 **delivery: Any) -> Path:
    """rules.yaml with the default retry schedule and breaker (``delivery`` overrides)."""
    document = yaml.safe_load(config_text(emulator.url, receiver.url, rooms=["r1"]))
    document["delivery"] = {"allow_private_urls": True, "timeout": "2s", **delivery}
    document["state"] = str(tmp_path / "state.db")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class Notifier:
    """`notifier run` as a subprocess; each run's stderr is kept (and saved to a file)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.logs: list[list[str]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._logged = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    def log(self, run: int) -> str:
        """What run number ``run`` (1-based) has logged so far."""
        return "".join(self.logs[run - 1])

    async def wait_log(self, text: str, timeout: float = 10) -> None:
        """Wait until the current run logs ``text``."""
        async with asyncio.timeout(timeout):
            while text not in self.log(len(self.logs)):
                self._logged.clear()
                await self._logged.wait()

    async def _read(self, stream: asyncio.StreamReader, lines: list[str]) -> None:
        with (self.config.parent / f"stderr.{len(self.logs)}.log").open("w") as saved:
            async for raw in stream:
                lines.append(raw.decode(errors="replace"))
                saved.write(lines[-1])
                self._logged.set()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(self.config)),
            env={**os.environ, **TEST_ENV}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        self.logs.append([])
        assert self.proc.stderr is not None
        self._reader = asyncio.create_task(self._read(self.proc.stderr, self.logs[-1]))

    async def kill(self) -> None:
        assert self.proc is not None and self._reader is not None
        self.proc.kill()
        assert await self.proc.wait() == -signal.SIGKILL
        await self._reader

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(self.proc.wait(), 30) == 0
        if self._reader is not None:
            await self._reader


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, every: float = EVERY, **delivery: Any
              ) -> AsyncIterator[tuple[RoomlioEmulator, WebhookReceiver, Stream, Notifier]]:
    """Emulator, receiver, a running notifier and a steady stream (a message every
    ``every`` seconds), warmed up: events already arrive before the test breaks anything."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET}) as rx:
        emu.add_room(key="r1")
        notifier = Notifier(write_config(tmp_path, emu, rx, **delivery))
        stream = Stream(emu, every)
        await notifier.start()
        stream.start()
        try:
            await rx.wait_count(5, timeout=30)
            yield emu, rx, stream, notifier
        finally:
            with contextlib.suppress(AssertionError):
                await stream.stop()
            await notifier.stop()


async def settle(rx: WebhookReceiver, stream: Stream, back: float,
                 killed: float | None = None) -> float:
    """Stop the stream a second after the receiver came back at ``back``; wait for every
    event; return how late the last of those pending at ``back`` arrived (seconds).

    No event arrives twice, except one accepted before a kill at ``killed`` (its 2xx may
    not have been recorded yet: at-least-once)."""
    await asyncio.sleep(max(0.0, back + 1.0 - time.monotonic()))  # new events keep coming
    await stream.stop()
    await rx.wait_for(lambda r: set(stream.posted) <= set(first_arrivals(r)), timeout=30)
    arrived = first_arrivals(rx)
    pending = [m for m, posted in stream.posted.items() if posted < back and arrived[m] >= back]
    assert len(pending) >= 10, "the outage left too few pending events to judge"
    twice = {m for m, n in Counter(r.json["data"]["message"]["id"] for r in rx.received).items()
             if n > 1 and (killed is None or arrived[m] >= killed)}
    assert not twice, f"sent twice: {sorted(twice)}"
    return max(arrived[m] for m in pending) - back


async def test_after_a_blip_every_pending_event_arrives_within_seconds(tmp_path):
    """Receiver down 1.2s under a steady stream: the breaker opens, and every event
    pending at its return arrives within BOUND seconds (not on the 5s retry step, nor
    after a minute's cool-down)."""
    async with rig(tmp_path) as (_, rx, stream, notifier):
        rx.set_default_status("/crm", 503)
        await asyncio.sleep(BLIP)  # the outage itself
        back = time.monotonic()
        rx.set_default_status("/crm", None)
        assert failed(rx) >= 10, "too few failures to open the breaker"
        late = await settle(rx, stream, back)
    log = notifier.log(1)
    assert "circuit closed -> open" in log and "half_open -> closed" in log
    print(f"blip {BLIP}s: last pending event arrived {late:.2f}s after the receiver's "
          f"return ({len(stream.posted)} events, {failed(rx)} failed requests)")
    assert late <= BOUND


async def test_after_a_blip_with_a_kill_9_in_it_events_still_arrive_within_seconds(tmp_path):
    """SIGKILL the notifier while the receiver is down; the restarted one resumes the
    open breaker (its wait not lengthened by the restart) and drains within BOUND."""
    async with rig(tmp_path) as (_, rx, stream, notifier):
        rx.set_default_status("/crm", 503)
        await notifier.wait_log("circuit closed -> open")
        killed = time.monotonic()
        await notifier.kill()
        before = len(rx.attempts)
        await notifier.start()
        # the restarted notifier meets the outage (its probe fails) before it ends
        await rx.wait_for(lambda r: len(r.attempts) > before, timeout=30)
        back = time.monotonic()
        rx.set_default_status("/crm", None)
        late = await settle(rx, stream, back, killed)
    assert "circuit closed -> open" in notifier.log(1)
    restarted = notifier.log(2)
    assert "half_open -> closed" in restarted and "closed -> open" not in restarted.replace(
        "half_open -> open", "")  # resumed open, not reopened by failures of its own
    print(f"blip with kill -9: last pending event arrived {late:.2f}s after the "
          f"receiver's return ({len(stream.posted)} events)")
    assert late <= BOUND


def most_probes(seconds: float, cap: float) -> int:
    """The most probes the documented backoff (1s, x1.6, -20% at most, capped) allows in
    ``seconds``: every wait at its shortest. Written out, not imported: it is the promise."""
    probes, spent, step = 0, 0.0, 0
    while True:
        spent += min(1.0 * 1.6 ** step, cap) * 0.8
        if spent > seconds:
            return probes
        probes, step = probes + 1, step + 1


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_a_receiver_down_for_long_sees_only_probes_not_the_backlog(tmp_path):
    """Down 12s under a stream of 40 a second (about 450 events): after the breaker opens,
    the receiver gets only probes, spaced by the growing backoff (1, 1.6, 2.56s, then the
    4s cap: the cap is reached); back up, everything arrives.

    The outage is 12s, not longer, to keep the suite quick: the stream is twice as dense
    so the backlog stays over 200; a breaker that let it through, or probed without
    backing off (about 12 probes against at most 5 allowed), still fails."""
    outage, cap, in_flight = 12.0, 4.0, 4
    async with rig(tmp_path, EVERY / 2, breaker_cooldown=f"{cap:g}s",
                   max_in_flight=in_flight) as (
            _, rx, stream, notifier):
        rx.set_default_status("/crm", 503)
        down, start = time.monotonic(), len(rx.attempts)
        await notifier.wait_log("circuit closed -> open")
        opened, opening = time.monotonic(), len(rx.attempts) - start
        await asyncio.sleep(max(0.0, down + outage - opened))  # the rest of the outage
        probes = len(rx.attempts) - start - opening
        back = time.monotonic()
        rx.set_default_status("/crm", None)
        late = await settle(rx, stream, back)
    backlog = sum(1 for posted in stream.posted.values() if down <= posted < back)
    allowed = most_probes(back - opened + 0.5, cap)  # it opened a little before we saw it
    print(f"down {back - down:.1f}s, {backlog} events: {opening} requests until the breaker "
          f"opened, then {probes} (allowed {allowed}); all arrived {late:.2f}s after the return")
    assert backlog >= 200 and opening <= 20 + in_flight  # at most the window, plus in flight
    assert 2 <= probes <= allowed  # it kept probing, no more often than the backoff allows
    assert late <= cap + BOUND


async def test_attempts_queued_for_a_slot_when_the_breaker_opens_do_not_go_out(
        emulator, receiver, make_config):
    """A slow receiver goes down with 20 deliveries queued behind max_in_flight 1: once
    the breaker opens, the queue waits; only probes reach the receiver."""
    emulator.add_room(key="r1")
    for n in range(20):
        emulator.post("r1", f"refund please, order {n}")
    receiver.set_default_status("/crm", 503)
    receiver.inject(Fault.delay(0.2), path="/crm", times=1000)  # slow, then 503
    config = make_config(rooms=["r1"], webhooks={"crm": {
        "url": f"{receiver.url}/crm", "secret": "${TEST_SECRET}", "max_in_flight": 1,
        "breaker_window": 4, "breaker_min_attempts": 4, "breaker_threshold": "100%",
        "breaker_cooldown": "2s"}})
    async with running(config) as service:
        await until(lambda: service.sender is not None)
        breaker = service.sender.health["crm"].breaker
        await until(lambda: breaker.step >= 2)  # two probes have failed
        seen = len(receiver.attempts)
    # four failures open it, one more may have taken the slot meanwhile, then two probes
    assert seen <= 4 + 1 + 2, f"{seen} requests: the queue went out after it opened"
