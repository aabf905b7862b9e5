"""The ops listener: /metrics, /healthz, /readyz and the admin actions, against a real run."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from notifier.testing import Fault
from tests.conftest import Outcomes
from tests.opsutil import ADMIN_TOKEN, ops_config, serving, until


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _value(found, name: str, **labels: str) -> float | None:
    for got, value in found.get(name, []):
        if all(got.get(k) == v for k, v in labels.items()):
            return value
    return None


def _answered(emulator, room: str) -> int:
    """RoomHistory requests for ``room`` the emulator has answered 200 so far."""
    return sum(r.room == room and r.status == 200 and r.done for r in emulator.requests)


async def test_metrics_count_polls_matches_attempts_and_latency(
        emulator, receiver, tmp_path):
    """A run with a failing webhook and a failing API call shows up in /metrics by label."""
    began = time.time()
    emulator.add_room(key="r1")
    emulator.post("r1", "URGENT refund please")    # refunds + urgent: crm and mod
    newest = emulator.post("r1", "nothing to see")
    emulator.inject(Fault.status(503), room="r1")
    receiver.inject(Fault.status(500), path="/mod")
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"])
    outcomes = Outcomes()
    async with serving(config, outcomes) as s:
        await outcomes.wait_for(lambda o: len(o.items) == 2)
        asked = time.time()
        status, text = await s.get("/metrics")
        answered = time.time()
    assert status == 200
    created = datetime.fromisoformat(newest["createdAt"]).timestamp()
    found = _families(text)
    # each ok poll is a RoomHistory request the emulator answered 200 (one was a 503)
    assert 1 <= _value(found, "notifier_polls_total", room="r1", outcome="ok") <= _answered(
        emulator, "r1")
    assert _value(found, "notifier_roomlio_errors_total", code="503") == 1
    assert _value(found, "notifier_messages_seen_total") >= 2
    assert _value(found, "notifier_rule_matches_total", rule="refunds") == 1
    assert _value(found, "notifier_rule_matches_total", rule="urgent") == 1
    assert _value(found, "notifier_events_enqueued_total", webhook="mod") == 1
    assert _value(found, "notifier_deliveries_total", webhook="mod", status_class="5xx") == 1
    assert _value(found, "notifier_deliveries_total", webhook="mod", status_class="2xx") == 1
    assert _value(found, "notifier_delivery_retries_total", webhook="mod") == 1
    assert _value(found, "notifier_delivery_retries_total", webhook="crm") == 0
    assert _value(found, "notifier_delivery_latency_seconds_count", webhook="crm") == 1
    assert _value(found, "notifier_outbox_depth") == 0
    assert _value(found, "notifier_dead_letters_stored") == 0
    # now (at the scrape) minus the newest message's createdAt
    assert asked - created <= _value(found, "notifier_room_lag_seconds", room="r1") <= (
        answered - created)
    assert began <= _value(found, "notifier_room_last_poll_timestamp_seconds", room="r1") <= (
        answered)
    assert _value(found, "notifier_webhook_breaker_state", webhook="crm") == 0


async def test_dead_letters_show_as_counter_and_gauge(emulator, receiver, tmp_path):
    """A delivery refused for good counts once and stays in the dead-letter gauge."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund")
    receiver.set_default_status("/crm", 400)
    outcomes = Outcomes()
    async with serving(ops_config(tmp_path, emulator, receiver, rooms=["r1"]), outcomes) as s:
        await outcomes.wait_for(lambda o: len(o.failed) == 1)
        found = _families((await s.get("/metrics"))[1])
    assert _value(found, "notifier_dead_letters_total", webhook="crm") == 1
    assert _value(found, "notifier_dead_letters_stored") == 1
    assert _value(found, "notifier_deliveries_total", webhook="crm", status_class="4xx") == 1


async def test_rooms_beyond_the_label_cap_are_summed_as_other(emulator, receiver, tmp_path):
    """With room_metrics_limit 1, the second room polls under room="_other" and has no gauge."""
    for key in ("a", "b"):
        emulator.add_room(key=key)
    config = ops_config(tmp_path, emulator, receiver, rooms=["a", "b"],
                        server={"room_metrics_limit": 1})
    began = time.time()
    async with serving(config) as s:
        await until(lambda: s.ops.board.first_poll_done)
        found = _families((await s.get("/metrics"))[1])
        a, b = _answered(emulator, "a"), _answered(emulator, "b")
    assert 1 <= _value(found, "notifier_polls_total", room="a", outcome="ok") <= a
    assert 1 <= _value(found, "notifier_polls_total", room="_other", outcome="ok") <= b
    assert _value(found, "notifier_polls_total", room="b") is None
    assert _value(found, "notifier_room_last_poll_timestamp_seconds", room="b") is None
    assert _value(found, "notifier_rooms") == 2
    assert began <= _value(found, "notifier_rooms_oldest_poll_timestamp_seconds") <= time.time()


async def test_healthz_and_readyz_report_alive_and_ready(emulator, receiver, tmp_path):
    """Once every room was polled, /healthz and /readyz answer 200 with a JSON body."""
    emulator.add_room(key="r1")
    async with serving(ops_config(tmp_path, emulator, receiver, rooms=["r1"])) as s:
        await until(lambda: s.ops.board.first_poll_done)
        health = await s.get("/healthz")
        ready = await s.get("/readyz")
    assert health == (200, json.dumps({"status": "ok"}))
    assert ready[0] == 200
    assert json.loads(ready[1]) == {"status": "ready", "checks": {
        "store": "ok", "first_poll": "ok", "shutdown": "ok"}}


async def test_readyz_is_503_before_the_first_poll_and_when_shutting_down(
        emulator, receiver, tmp_path):
    """A room whose first poll has not finished, and a stop under way, make /readyz 503."""
    emulator.add_room(key="r1")
    emulator.set_latency(1.0)
    ops_stop = asyncio.Event()
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"])
    async with serving(config, ops_stop=ops_stop) as s:
        status, body = await s.get("/readyz")
        assert status == 503
        assert json.loads(body)["checks"]["first_poll"] == "waiting"
        assert (await s.get("/healthz"))[0] == 200
        emulator.set_latency(0.0)
        await until(lambda: s.ops.board.first_poll_done)
        assert (await s.get("/readyz"))[0] == 200
        ops_stop.set()
        status, body = await s.get("/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["shutdown"] == "shutting down"


async def test_readyz_is_503_when_the_store_is_unreachable(emulator, receiver, tmp_path):
    """A state store that no longer answers turns /readyz to 503, naming the store."""
    emulator.add_room(key="r1")
    async with serving(ops_config(tmp_path, emulator, receiver, rooms=["r1"])) as s:
        await until(lambda: s.ops.board.first_poll_done)
        assert s.service.store is not None
        await s.service.store.close()
        status, body = await s.get("/readyz")
        s.stop.set()  # the service notices the closed store only when it stops
    assert status == 503
    assert json.loads(body)["checks"]["store"].startswith("unreachable")


async def test_replay_needs_the_admin_token_and_resends_the_dead_letter(
        emulator, receiver, tmp_path):
    """Replay is refused without or with a wrong token; with it the dead letter is re-sent."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund")
    receiver.set_default_status("/crm", 422)
    outcomes = Outcomes()
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"],
                        server={"admin_token": ADMIN_TOKEN})
    async with serving(config, outcomes) as s:
        await outcomes.wait_for(lambda o: len(o.failed) == 1)
        dead_id = outcomes.failed[0].delivery.id
        receiver.set_default_status("/crm", None)
        assert (await s.post("/api/dead-letters/replay", {"ids": [dead_id]}))[0] == 401
        assert (await s.post("/api/dead-letters/replay", {"ids": [dead_id]}, "wrong"))[0] == 401
        assert len(receiver.received) == 0
        status, body = await s.post("/api/dead-letters/replay", {"ids": [dead_id]}, ADMIN_TOKEN)
        assert (status, body) == (200, {"replayed": 1})
        await receiver.wait_count(1)
        await outcomes.wait_for(lambda o: any(x.ok for x in o.items))
        _, page = await s.get("/api/status")
    assert receiver.received[0].headers["webhook-id"] == dead_id
    assert json.loads(page)["dead_letters"] == []


async def test_admin_actions_are_refused_when_no_token_is_configured(
        emulator, receiver, tmp_path):
    """Without server.admin_token, replay and enable answer 403 whatever is sent."""
    emulator.add_room(key="r1")
    async with serving(ops_config(tmp_path, emulator, receiver, rooms=["r1"])) as s:
        replay = await s.post("/api/dead-letters/replay", {"all": True}, ADMIN_TOKEN)
        enable = await s.post("/api/webhooks/crm/enable", {}, ADMIN_TOKEN)
    assert replay[0] == 403 and "admin_token" in replay[1]["error"]
    assert enable[0] == 403


async def test_enable_names_an_unknown_webhook_and_a_bad_replay_body(
        emulator, receiver, tmp_path):
    """Enable of an unknown webhook is 404; a replay body without ids is 400."""
    emulator.add_room(key="r1")
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"],
                        server={"admin_token": ADMIN_TOKEN})
    async with serving(config) as s:
        unknown = await s.post("/api/webhooks/nope/enable", {}, ADMIN_TOKEN)
        bad = await s.post("/api/dead-letters/replay", {"ids": "x"}, ADMIN_TOKEN)
    assert unknown[0] == 404
    assert bad[0] == 400


async def test_status_api_shows_rooms_webhooks_and_recent_deliveries(
        emulator, receiver, tmp_path):
    """The status JSON lists each room's cursor and polls, and each webhook's success rate."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund")
    receiver.inject(Fault.status(502), path="/crm")
    outcomes = Outcomes()
    async with serving(ops_config(tmp_path, emulator, receiver, rooms=["r1"]), outcomes) as s:
        await outcomes.wait_for(lambda o: len(o.items) == 1)
        status, text = await s.get("/api/status")
        page_status, page = await s.get("/")
    data = json.loads(text)
    assert status == 200 and page_status == 200 and "<table id=\"dead\">" in page
    (room,) = data["rooms"]
    assert room["room"] == "r1" and room["cursor"] == emulator.messages("r1")[-1]["id"]
    crm = next(w for w in data["webhooks"] if w["webhook"] == "crm")
    assert crm["success_rate"] == 0.5 and crm["last_status"] == 200
    assert "502" in crm["last_error"] and crm["breaker"] == "closed"
    assert [r["status"] for r in data["recent"]] == [200, 502]


async def test_enable_turns_a_webhook_disabled_by_410_back_on(emulator, receiver, tmp_path):
    """A 410 disables crm (shown on the status page); enable with the token resends its event."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund")
    receiver.set_default_status("/crm", 410)
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"],
                        server={"admin_token": ADMIN_TOKEN})
    async with serving(config) as s:

        async def crm_disabled() -> bool:
            webhooks = json.loads((await s.get("/api/status"))[1])["webhooks"]
            return str(next(w for w in webhooks if w["webhook"] == "crm")["state"]).startswith(
                "disabled")

        await until(crm_disabled)
        receiver.set_default_status("/crm", None)
        assert (await s.post("/api/webhooks/crm/enable", {}))[0] == 401
        status, body = await s.post("/api/webhooks/crm/enable", {}, ADMIN_TOKEN)
        assert (status, body) == (200, {"enabled": "crm", "was_disabled": True})
        await receiver.wait_count(1, timeout=15)
    assert receiver.received[0].path == "/crm"
