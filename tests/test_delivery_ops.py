"""Delivery operations against the real emulator and receiver: dead letters and their
replay, the circuit breaker, auto-disable, secret rotation and retry schedules."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from notifier.delivery.breaker import BreakerState
from notifier.delivery.formats import load_config
from notifier.store import open_store
from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.conftest import SECRET, TEST_ENV, Outcomes, notifier_command, running

OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
FAST = {"retry_schedule": ["20ms", "20ms"]}


def hooks(receiver: WebhookReceiver, **settings: object) -> dict[str, dict[str, object]]:
    """crm and mod on ``receiver``, both with ``settings`` (e.g. a fast retry schedule)."""
    return {name: {"url": f"{receiver.url}/{name}", "secret": "${TEST_SECRET}", **settings}
            for name in ("crm", "mod")}


async def cli(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *notifier_command(*args), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **TEST_ENV})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def with_ops_webhook(path: Path, name: str):
    """The config at ``path`` with ``ops_webhook: name`` added."""
    path.write_text(path.read_text() + f"ops_webhook: {name}\n")
    return load_config(str(path), env={**os.environ, **TEST_ENV})


async def until(predicate, timeout: float = 10) -> None:
    """Await a condition on state that has no event of its own (checked every 10ms)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - in-memory state, no event to await
            await asyncio.sleep(0.01)


#: How far the dead letters are backdated before their replay: far past the 5 minutes
#: within which a Standard Webhooks receiver accepts a signature's timestamp.
AGE = 3600.0


def _backdate(state: str, seconds: float) -> None:
    """Make every event and dead letter in the real state file ``seconds`` older, as if
    they had failed that long ago (WAL: the running service's reads are not disturbed)."""
    conn = sqlite3.connect(state, timeout=10)
    try:
        with conn:
            conn.execute("UPDATE events SET detected_at = detected_at - ?", (seconds,))
            conn.execute("UPDATE dead_letters SET failed_at = failed_at - ?", (seconds,))
    finally:
        conn.close()


async def test_a_receiver_down_past_the_retry_budget_gets_its_events_via_dlq_replay(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config, tmp_path: Path):
    """Dead letters listed by `dlq list` are resent by `dlq replay` while `run` runs,
    with the same webhook-id and a fresh, verifiable timestamp and signature: dead letters
    an hour old are signed with the time of their replay, so a Standard Webhooks receiver
    (5 minutes' tolerance) accepts them."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    emulator.post("r1", "another refund")
    receiver.set_default_status("/crm", 503)
    config = make_config(rooms=["r1"], webhooks=hooks(receiver, **FAST))
    outcomes = Outcomes()
    async with running(config, outcomes):
        await outcomes.wait_for(lambda o: len(o.failed) == 2)
        failed = {a.webhook_id: a.headers["webhook-timestamp"] for a in receiver.attempts}
        assert len(receiver.attempts) == 6  # 2 deliveries x (1 + 2 retries)
        code, out, _ = await cli("dlq", "list", "--config", config.path, "--json")
        assert code == 0 and out.count("\n") == 2 and '"last_status": 503' in out
        receiver.set_default_status("/crm", None)
        receiver.tolerance = 10 * int(AGE)  # it accepts a stale one: the package judges below
        await asyncio.to_thread(_backdate, config.state, AGE)
        code, out, _ = await cli("dlq", "replay", "--config", config.path, "--webhook", "crm")
        assert code == 0 and out.startswith("2 dead letter(s) put back"), out
        await receiver.wait_count(2)
        # verified by the public package now, with its own clock and 5-minute tolerance
        for r in receiver.received:
            Verifier(SECRET).verify(r.body, r.headers)
    assert {r.webhook_id for r in receiver.received} == set(failed)
    for r in receiver.received:
        assert int(r.headers["webhook-timestamp"]) >= int(failed[r.webhook_id])
        detected = datetime.fromisoformat(r.json["timestamp"]).timestamp()
        assert detected < time.time() - AGE + 60, "the backdated detection time was not used"
    async with open_store(config.state) as store:
        assert (await store.stats()).dead_letters == 0


async def test_dlq_filters_select_by_webhook_rule_and_id_and_purge_needs_confirmation(
        emulator, receiver, make_config):
    """--rule/--id narrow what is listed; purge refuses without --yes on a non-terminal."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    emulator.post("r1", "urgent matter")
    receiver.set_default_status("/crm", 500)
    receiver.set_default_status("/mod", 500)
    config = make_config(rooms=["r1"], webhooks=hooks(receiver, **FAST))
    outcomes = Outcomes()
    async with running(config, outcomes):
        await outcomes.wait_for(lambda o: len(o.failed) == 3)
    code, out, _ = await cli("dlq", "list", "--config", config.path, "--rule", "urgent")
    assert code == 0 and out.count("urgent") == 2 and "refunds" not in out
    one = outcomes.failed[0].delivery
    code, out, _ = await cli("dlq", "list", "--config", config.path, "--json",
                             "--id", one.event.id, "--webhook", one.webhook)
    assert out.count("\n") == 1 and one.id in out
    code, _, err = await cli("dlq", "purge", "--config", config.path)
    assert code == 64 and "--yes" in err
    code, out, _ = await cli("dlq", "purge", "--config", config.path, "--webhook", "mod", "--yes")
    assert (code, out.strip()) == (0, "1 dead letter(s) purged")
    async with open_store(config.state) as store:
        assert {d.delivery.webhook for d in await store.dead_letters()} == {"crm"}


async def test_the_breaker_opens_after_a_run_of_failures_probes_once_and_closes(
        emulator, receiver, make_config, caplog):
    """While open no attempts are spent but one probe per cool-down; success closes it."""
    caplog.set_level(logging.WARNING, "notifier.delivery")
    emulator.add_room(key="r1")
    for i in range(4):
        emulator.post("r1", f"refund {i}")
    receiver.set_default_status("/crm", 503)
    config = make_config(rooms=["r1"], webhooks=hooks(
        receiver, retry_schedule=["30ms"] * 30, breaker_window=4, breaker_threshold="100%",
        breaker_cooldown="400ms"))
    async with running(config) as service:
        await until(lambda: service.sender is not None)
        health = service.sender.health["crm"]
        await until(lambda: health.breaker.state is BreakerState.OPEN)
        opened, spent = time.monotonic(), len(receiver.attempts)
        await receiver.wait_for(lambda r: len(r.attempts) == spent + 1)   # the probe
        assert time.monotonic() - opened >= 0.25  # capped by the 400ms cool-down: 320-400ms
        await until(lambda: health.breaker.state is BreakerState.OPEN)
        async with open_store(config.state) as store:
            assert (await store.webhook_states())["crm"].breaker == "open"
        receiver.set_default_status("/crm", None)
        await receiver.wait_count(4, timeout=5)
        assert health.breaker.state is BreakerState.CLOSED
        assert len(receiver.attempts) - spent <= 2 + 4  # two probes, then the four
    assert "circuit closed -> open" in caplog.text and "half_open -> closed" in caplog.text
    async with open_store(config.state) as store:
        assert (await store.webhook_states())["crm"].breaker == "closed"


async def test_a_410_disables_the_webhook_keeps_its_events_and_tells_the_ops_webhook(
        emulator, receiver, make_config, tmp_path):
    """410 Gone: disabled, deliveries kept in the outbox, webhook.disabled sent to ops,
    shown by `status`; `webhook enable` sends the held deliveries."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    receiver.set_default_status("/crm", 410)
    ops = {"ops": {"url": f"{receiver.url}/ops"}, **hooks(receiver, **FAST)}
    make_config(rooms=["r1"], webhooks=ops,
                rules=[{"name": "refunds", "keywords": ["refund"], "notify": ["crm"]}])
    config = with_ops_webhook(tmp_path / "rules.yaml", "ops")
    async with running(config):
        await receiver.wait_count(1)
        event = receiver.received[0]
        assert (event.path, event.json["type"]) == ("/ops", "webhook.disabled")
        assert event.json["data"]["webhook"] == "crm" and "410" in event.json["data"]["reason"]
        code, out, _ = await cli("status", "--config", config.path)
        assert code == 0 and "DISABLED" in out and "outbox: 1" in out
        receiver.set_default_status("/crm", None)
        code, out, _ = await cli("webhook", "enable", "crm", "--config", config.path)
        assert code == 0 and "enabled" in out
        await receiver.wait_count(2)
    assert receiver.received[1].path == "/crm"
    assert sum(1 for a in receiver.attempts if a.path == "/crm") == 2  # no attempt while off


async def test_a_webhook_failing_for_disable_after_is_disabled_without_losing_events(
        emulator, receiver, make_config):
    """No success for disable_after: disabled, and its deliveries stay in the outbox."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    receiver.set_default_status("/crm", 503)
    config = make_config(rooms=["r1"], webhooks=hooks(receiver, retry_schedule=["50ms"] * 40,
                                                      disable_after="300ms"),
                         rules=[{"name": "refunds", "keywords": ["refund"], "notify": ["crm"]}])
    async with running(config) as service:
        await until(lambda: service.sender is not None and service.sender.health["crm"].disabled)
    async with open_store(config.state) as store:
        state = (await store.webhook_states())["crm"]
        assert state.disabled and "no successful delivery" in state.disabled_reason
        assert ((await store.stats()).outbox, (await store.stats()).dead_letters) == (1, 0)


async def test_with_two_secrets_every_request_verifies_with_either_key(
        emulator, receiver, make_config):
    """Rotation: each request carries one v1 signature per secret; standardwebhooks
    accepts it with the new key and with the old one, and not with a third."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    crm = {"crm": {"url": f"{receiver.url}/crm", "secret": [SECRET, OLD_SECRET]}}
    async with running(make_config(rooms=["r1"], webhooks=crm)):
        await receiver.wait_count(1)
    got = receiver.received[0]
    assert len(got.headers["webhook-signature"].split()) == 2
    for secret in (SECRET, OLD_SECRET):
        Verifier(secret).verify(got.body, got.headers)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(Exception, match="No matching signature"):
        Verifier(other).verify(got.body, got.headers)


@pytest.mark.parametrize(("delivery", "webhook", "expected"), [
    ({}, {}, ((5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0), 8)),
    ({"retry_schedule": ["1s", "1m"]}, {}, ((1.0, 60.0), 3)),
    ({}, {"retry_schedule": ["2s"]}, ((2.0,), 2)),
    ({}, {"max_attempts": 4}, (None, 4)),
    ({"max_attempts": 3, "max_backoff": "1s"}, {}, (None, 3)),
])
def test_retry_policy_defaults_to_the_standard_schedule_and_may_be_overridden(
        tmp_path, delivery, webhook, expected):
    """retry_schedule wins; max_attempts/max_backoff choose exponential backoff."""
    from tests.conftest import config_text

    text = config_text("http://127.0.0.1:1", "http://127.0.0.1:2", rooms=["r1"],
                       webhooks={"crm": {"url": "http://127.0.0.1:2/crm", **webhook}})
    text = text.replace("  max_attempts: 5\n  max_backoff: 200ms\n", "")
    for key, value in delivery.items():
        text = text.replace("delivery:\n", f"delivery:\n  {key}: {value}\n")
    path = tmp_path / "rules.yaml"
    path.write_text(text.replace("'", ""))
    crm = load_config(str(path), env=TEST_ENV).webhooks["crm"]
    assert (crm.retry_schedule, crm.max_attempts) == expected


def test_retry_schedule_and_max_attempts_together_are_refused(tmp_path):
    """Both in one section is a config error naming the fix."""
    from notifier.delivery.formats import check_config
    from tests.conftest import config_text

    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1", "http://127.0.0.1:2", rooms=["r1"],
                                delivery={"retry_schedule": ["5s"]}))
    problems = [str(p) for p in check_config(str(path), env=TEST_ENV)]
    assert any("delivery.retry_schedule" in p and "not both" in p for p in problems), problems
