"""Every command reports a refused Roomlio key and a broken state store in the same words,
with the same exit codes (2: configuration, 1: error), and never a traceback."""

from __future__ import annotations

import os

import pytest

from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, TEST_ENV, config_text
from tests.test_cli import run_cli

ROOMLIO_COMMANDS = [("run",), ("backtest", "--since", "1h"), ("replay", "--since", "1h")]
STORE_COMMANDS = [("status",), ("dlq", "list"), ("quarantine", "list"),
                  ("webhook", "enable", "crm")]


@pytest.mark.parametrize("command", ROOMLIO_COMMANDS, ids=lambda c: c[0])
async def test_a_refused_api_key_is_a_configuration_error_for_every_command(tmp_path, command):
    async with RoomlioEmulator(api_key="the-real-key") as emu, WebhookReceiver() as rx:
        emu.add_room(key="r1")
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1"],
                                    state=str(tmp_path / "state.db")))
        code, out, err = await run_cli(*command, "--config", str(path), env=TEST_ENV)
    assert code == 2, err
    assert "notifier: Roomlio refused the API key" in err
    assert API_KEY not in err + out
    assert "Traceback" not in err


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=" ".join)
async def test_a_state_store_failure_is_an_error_for_every_command(tmp_path, command):
    # a symlink at the state path is refused (O_NOFOLLOW): a StoreError from every command
    os.symlink(tmp_path / "elsewhere.db", tmp_path / "state.db")
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1/rpc", "http://127.0.0.1:1", rooms=["r1"],
                                state=str(tmp_path / "state.db")))
    code, _, err = await run_cli(*command, "--config", str(path), env=TEST_ENV)
    assert code == 1, err
    assert err.startswith("notifier: state store: "), err
    assert "Traceback" not in err
