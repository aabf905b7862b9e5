"""Running the daemon (notifier.runtime.run): the listener beside the service, a second stop
signal, the hooks' fan-out."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import yaml

from notifier.runtime.hooks import ServiceHooks, fan_out
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on the deployment target")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_second_stop_signal_exits_at_once_with_128_plus_its_number(tmp_path, sig):
    """The first signal waits for a POST in flight (60 s of grace); the second ends it now."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="r1")
        emu.post("r1", "refund please")
        rx.inject(Fault.delay(60), path="/crm")
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1"],
                                    delivery={"shutdown_grace": "60s", "timeout": "60s"}))
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path)),
            env={**os.environ, **TEST_ENV}, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        try:
            await rx.wait_for(lambda r: any(a.path == "/crm" for a in r.attempts), timeout=20)
            proc.send_signal(sig)
            async with asyncio.timeout(20):
                while b"stopping: polling ends" not in (line := await proc.stderr.readline()):
                    assert line, "notifier exited after the first signal"
            proc.send_signal(sig)
            async with asyncio.timeout(10):
                await proc.stderr.read()
                assert await proc.wait() == 128 + sig
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_run_serves_the_ops_listener_when_the_config_has_a_server_section(tmp_path):
    """`notifier run` with ``server:`` answers /healthz beside the service, then stops on
    SIGTERM with exit 0."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="r1")
        document = yaml.safe_load(config_text(emu.url, rx.url, rooms=["r1"]))
        document["server"] = {"listen": "127.0.0.1:0"}
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump(document))
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path)),
            env={**os.environ, **TEST_ENV}, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        try:
            async with asyncio.timeout(20):
                while not (found := re.search(rb"ops listener on (http://\S+)",
                                              line := await proc.stderr.readline())):
                    assert line, "notifier exited before it listened"
            async with aiohttp.ClientSession() as http, \
                    http.get(found.group(1).decode() + "/healthz") as resp:
                assert resp.status == 200
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                await proc.stderr.read()
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def test_fan_out_calls_every_part_for_every_hook():
    """Each hook of the joined ServiceHooks calls each part's, in order; none is dropped."""
    calls: list[tuple[str, str]] = []

    def recorder(part: str, hook: str) -> Callable[..., None]:
        return lambda *_args: calls.append((part, hook))

    names = [f.name for f in dataclasses.fields(ServiceHooks)]
    first = ServiceHooks(**{n: recorder("first", n) for n in names})
    second = ServiceHooks(**{n: recorder("second", n) for n in names})
    joined = fan_out(first, None, ServiceHooks(), second)
    args: dict[str, tuple[Any, ...]] = {n: (None,) * 2 for n in names}
    for name in names:
        getattr(joined, name)(*args[name])
    assert calls == [(part, n) for n in names for part in ("first", "second")]


def test_fan_out_passes_a_lone_listener_through_and_leaves_the_unheard_hooks_empty():
    """One listener is called directly (no wrapper on the hot path); nobody listening: None."""
    def on_attempt(_report: object) -> None:
        pass

    joined = fan_out(ServiceHooks(on_attempt=on_attempt), ServiceHooks())
    assert joined.on_attempt is on_attempt
    assert joined.on_outcome is None


@pytest.mark.parametrize("before", [(700, 10, 10), (0, 10, 10), (50_000, 5, 7)])
def test_run_loop_raises_the_young_gc_threshold_only_while_it_runs(before):
    """The daemon's loop runs with the collector's first threshold at least
    YOUNG_GC_THRESHOLD (a page's objects are freed by reference counting; at Python's 700
    the collector traversed them hundreds of times a run); a collector turned off (0) stays
    off, a higher threshold stays, and the process's own settings come back afterwards."""
    import gc

    from notifier.util.aio import YOUNG_GC_THRESHOLD, run_loop

    async def during() -> tuple[int, int, int]:
        return gc.get_threshold()

    saved = gc.get_threshold()
    gc.set_threshold(*before)
    try:
        seen = run_loop(during())
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*saved)
    young = before[0] if before[0] in (0, 50_000) else YOUNG_GC_THRESHOLD
    assert seen == (young, *before[1:])
    assert after == before
