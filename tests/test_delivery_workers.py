"""Delivery worker processes (``delivery.workers``): POSTs on more cores, nothing lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from notifier.delivery.formats import load_config
from notifier.delivery.sender import AttemptReport, DeliveryOutcome
from notifier.errors import ConfigError
from notifier.events import Delivery, Event
from notifier.runtime.worker import (
    decode_report,
    delivered_by_workers,
    encode_attempt,
    encode_outcome,
)
from notifier.store import open_store
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import SECRET, TEST_ENV, config_text, notifier_command
from tests.opsutil import until

API_KEY = TEST_ENV["TEST_API_KEY"]



def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid), "-f", "notifier.runtime.worker"],
                         capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _write(tmp_path: Path, emu: RoomlioEmulator, rx: WebhookReceiver, **delivery: object) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(config_text(emu.url, rx.url, rooms=["r1", "r2"],
                                delivery={"shutdown_grace": "2s", **delivery}))
    return path


@contextlib.asynccontextmanager
async def _notifier(path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`notifier run` as a subprocess; killed (workers and all) if the test fails early."""
    proc = await asyncio.create_subprocess_exec(
        *notifier_command("run", "--config", str(path)), env={**os.environ, **TEST_ENV},
        stderr=asyncio.subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            workers = _children(proc.pid)
            proc.kill()
            await proc.wait()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def test_workers_deliver_every_event_and_stop_cleanly(tmp_path: Path) -> None:
    """With two workers every matching message arrives once and SIGTERM leaves no claim."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, WebhookReceiver() as rx:
        for room in ("r1", "r2"):
            emu.add_room(key=room)
            for i in range(60):
                emu.post(room, f"refund {room} {i}")
        path = _write(tmp_path, emu, rx, workers=2)
        async with _notifier(path) as proc:
            await rx.wait_for(lambda r: len(r.unique_ids()) == 120, timeout=60)
            assert len(_children(proc.pid)) == 2
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert len(rx.received) == 120  # no duplicates in an undisturbed run
    assert "Traceback" not in err.decode()
    async with open_store(str(tmp_path / "state.db")) as store:
        assert (await store.stats()).outbox == 0


async def test_a_killed_worker_is_restarted_and_its_deliveries_are_sent(tmp_path: Path) -> None:
    """SIGKILL one worker mid-burst: its claims are released, a new one starts, none lost."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, WebhookReceiver() as rx:
        emu.add_room(key="r1")
        emu.add_room(key="r2")
        rx.inject(Fault.delay(0.2), times=40)  # keeps deliveries claimed and in flight
        for i in range(40):
            emu.post("r1", f"refund {i}")
        path = _write(tmp_path, emu, rx, workers=1, max_in_flight=8)
        async with _notifier(path) as proc:
            await rx.wait_count(3, timeout=30)
            [victim] = _children(proc.pid)
            os.kill(victim, signal.SIGKILL)
            await rx.wait_for(lambda r: len(r.unique_ids()) == 40, timeout=60)
            replacement = _children(proc.pid)
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert replacement and victim not in replacement
    assert "delivery worker 0 exited" in err.decode()
    assert {r.json["data"]["message"]["body"] for r in rx.received} == {
        f"refund {i}" for i in range(40)}


async def test_workers_stop_when_the_runner_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the runner closes the workers' stdin: they stop too, no orphan remains."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, WebhookReceiver() as rx:
        emu.add_room(key="r1")
        emu.add_room(key="r2")
        path = _write(tmp_path, emu, rx, workers=2)
        async with _notifier(path) as proc:
            await until(lambda: len(_children(proc.pid)) == 2, timeout=20)
            workers = _children(proc.pid)
            proc.kill()
            await proc.wait()
        await until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
                    timeout=20)


async def test_the_runner_keeps_rate_limited_grouped_and_ordered_webhooks(
        tmp_path: Path) -> None:
    """Limits that hold per process stay with one process: workers get plain webhooks."""
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1", "http://127.0.0.1:2", rooms=["r1"],
                                delivery={"workers": 2}, webhooks={
        "crm": {"url": "http://127.0.0.1:2/crm", "secret": SECRET},
        "limited": {"url": "http://127.0.0.1:2/l", "rate_limit": "5/s"},
        "grouped": {"url": "http://127.0.0.1:2/g", "format": "slack", "group_wait": "2s"},
        "ordered": {"url": "http://127.0.0.1:2/o", "ordered": True},
    }, rules=[{"name": "r", "keywords": ["x"], "notify": ["crm", "limited", "grouped",
                                                          "ordered"]}]))
    config = load_config(str(path), env={**os.environ, **TEST_ENV})
    assert list(delivered_by_workers(config.webhooks)) == ["crm", "mod"]


@pytest.mark.parametrize("state", ["postgresql://u@db.example/notifier", ":memory:"])
def test_workers_need_a_sqlite_file(tmp_path: Path, state: str) -> None:
    """delivery.workers with PostgreSQL or :memory: is a config error naming the line."""
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1", "http://127.0.0.1:2", rooms=["r1"],
                                delivery={"workers": 1}, state=state))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env={**os.environ, **TEST_ENV})
    [problem] = [p for p in caught.value.problems if "workers" in str(p)]
    assert f"{path}:" in str(problem) and "run more instances" in str(problem)


def test_reports_carry_what_metrics_and_the_status_page_need() -> None:
    """An attempt and an outcome survive the pipe; the message itself is not carried."""
    event = Event("evt_1", "message.created", "r1", {"body": "refund"}, ("a", "b"), 12.5)
    delivery = Delivery("msg_1", "crm", ("a",), event, 2)
    attempt = decode_report(encode_attempt(AttemptReport(delivery, 3, 503, "HTTP 503", 0.25)))
    outcome = decode_report(encode_outcome(DeliveryOutcome(delivery, True, 3, None)))
    bare = Delivery("msg_1", "crm", ("a",), Event("evt_1", "message.created", "r1", {},
                                                   ("a", "b"), 12.5), 2)
    assert attempt == AttemptReport(bare, 3, 503, "HTTP 503", 0.25)
    assert outcome == DeliveryOutcome(bare, True, 3, None)


@pytest.mark.parametrize(("cores", "state", "expected"), [
    (2, None, 1), (1, None, 0), (4, None, 3), (200, None, 64),
    (4, "postgresql://u@db.example/notifier", 0), (2, ":memory:", 0)])
def test_auto_is_one_worker_per_core_but_one_and_none_without_a_state_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int, state: str | None,
        expected: int) -> None:
    """`workers: auto` keeps one core for the main process; PostgreSQL runs instances."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1", "http://127.0.0.1:2", rooms=["r1"],
                                delivery={"workers": "auto"},
                                **({"state": state} if state else {})))
    config = load_config(str(path), env={**os.environ, **TEST_ENV})
    assert config.delivery.workers == expected


@pytest.mark.parametrize("value", ["many", -1, 65, "1.5"])
def test_workers_is_auto_or_a_count(tmp_path: Path, value: object) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1", "http://127.0.0.1:2", rooms=["r1"],
                                delivery={"workers": value}))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env={**os.environ, **TEST_ENV})
    [problem] = [p for p in caught.value.problems if "workers" in str(p)]
    assert f"{path}:" in str(problem) and "auto or a whole number from 0 to 64" in str(problem)
