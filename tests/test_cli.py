"""The command line as users run it: exit codes, messages, signals, the demo."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from notifier.store import open_store
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command

REPO = Path(__file__).resolve().parent.parent


async def run_cli(*args: str, env: dict[str, str] | None = None,
                  timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *notifier_command(*args), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_accepts_the_shipped_example_rules_file():
    """The README's rules.yaml is valid once its variables are set."""
    env = {"ROOMLIO_API_KEY": "k", "CRM_WEBHOOK_SECRET": SECRET, "MOD_WEBHOOK_SECRET": SECRET}
    code, out, err = await run_cli("check", "--config", str(REPO / "rules.yaml"), env=env)
    assert (code, err) == (0, "")
    assert "OK" in out


async def test_check_reports_each_problem_on_its_own_line_without_secrets(tmp_path):
    """Problems name file, line and key; the secret's value is never printed."""
    bad_secret = "whsec_c2hvcnQ="
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1/rpc", "https://hooks.example.com",
                                rooms=["r1"],
                                roomlio={"poll_interval": "5 parsecs"},
                                webhooks={"crm": {"url": "ftp://x", "secret": bad_secret}},
                                rules=[{"name": "a", "keywords": ["x"], "notify": ["slakc"]}]))
    code, out, err = await run_cli("check", "--config", str(path), env=TEST_ENV)
    assert code == 2
    lines = err.strip().splitlines()
    text_lines = path.read_text().splitlines()
    line_no = next(i for i, t in enumerate(text_lines, 1) if "poll_interval" in t)
    assert any(f"rules.yaml:{line_no}: roomlio.poll_interval" in line for line in lines), err
    assert any("notify" in line and "slakc" in line for line in lines), err
    assert any("webhooks.crm.url" in line for line in lines), err
    assert any("webhooks.crm.secret" in line for line in lines), err
    assert "c2hvcnQ" not in err + out
    assert "Traceback" not in err


async def test_check_names_an_unset_variable(tmp_path):
    """An unset ${VAR} is reported by name, with a non-zero exit."""
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1/rpc", "https://hooks.example.com",
                                rooms=["r1"]))
    env = {k: v for k, v in os.environ.items() if k not in TEST_ENV}
    proc = await asyncio.create_subprocess_exec(
        *notifier_command("check", "--config", str(path)), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"TEST_API_KEY" in err and b"not set" in err


async def test_run_with_a_wrong_api_key_stops_at_start_with_a_clear_message(tmp_path):
    """A 401 from Roomlio ends `notifier run` with a message and a non-zero exit."""
    async with RoomlioEmulator(api_key="the-real-key") as emu, WebhookReceiver() as rx:
        emu.add_room(key="r1")
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1"]))
        code, out, err = await run_cli("run", "--config", str(path), env=TEST_ENV)
    assert code == 2
    assert "API key" in err
    assert API_KEY not in err + out
    assert "Traceback" not in err


async def test_sigterm_mid_burst_exits_zero_and_loses_nothing(tmp_path):
    """SIGTERM while deliveries are slow: exit 0, undelivered events stay and arrive later."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        emu.add_room(key="r1")
        for i in range(40):
            emu.post("r1", f"refund {i}")
        rx.inject(Fault.delay(0.3), path="/crm", times=1000)
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1"],
                                    delivery={"shutdown_grace": "1s", "max_in_flight": 2}))
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path)),
            env={**os.environ, **TEST_ENV}, stderr=asyncio.subprocess.PIPE)
        await rx.wait_count(2, timeout=20)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
        delivered_before = {r.webhook_id for r in rx.received}
        store = open_store(str(tmp_path / "state.db"))
        async with store:
            stats = await store.stats()
        assert stats.outbox == 40 - len(delivered_before)
        assert stats.outbox > 0
        rx.clear_faults()
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path)), env={**os.environ, **TEST_ENV})
        await rx.wait_for(lambda r: len(r.unique_ids()) == 40, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    bodies = {r.json["data"]["message"]["body"] for r in rx.received}
    assert bodies == {f"refund {i}" for i in range(40)}


async def test_a_second_runner_on_the_same_state_file_is_refused(tmp_path):
    """Two `notifier run` on one SQLite file: the second exits with a clear message."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, WebhookReceiver() as rx:
        emu.add_room(key="r1")
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1"]))
        first = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path)), env={**os.environ, **TEST_ENV})
        await emu.wait_requests(1, timeout=20)
        code, _, err = await run_cli("run", "--config", str(path), env=TEST_ENV)
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20) == 0
    assert code == 1
    assert "already running" in err


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on the deployment target")
async def test_demo_shows_verified_deliveries_and_a_summary():
    """`notifier demo --seconds N` prints live deliveries, all verified, then a summary."""
    code, out, err = await run_cli("demo", "--seconds", "4", "--rate", "8", timeout=60)
    assert code == 0, err
    assert "signature ok" in out
    assert "SIGNATURE FAILED" not in out
    assert "demo summary" in out
    assert " 0 duplicate(s)" in out


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on the deployment target")
async def test_demo_with_an_api_limit_learns_it_and_warns_once():
    """`notifier demo --api-limit 2`: the emulator refuses beyond 2 requests a second; the
    notifier says so in one warning, and the summary counts the refusals."""
    code, out, err = await run_cli("demo", "--seconds", "8", "--rate", "4",
                                   "--api-limit", "2", timeout=60)
    assert code == 0, err
    assert err.count("Roomlio refuses requests (HTTP 429)") == 1, err
    summary = next(line for line in out.splitlines() if "roomlio api" in line)
    requests, refused = (int(w) for w in re.findall(r"(\d+) (?:requests|refused)", summary))
    assert 0 < refused < requests / 2, summary


@pytest.mark.parametrize("bad", ["0", "-1", "fast"])
async def test_demo_refuses_a_nonsense_api_limit(bad):
    code, _, err = await run_cli("demo", "--seconds", "1", "--api-limit", bad, timeout=60)
    assert code == 2 and "--api-limit" in err and repr(bad) in err, err
