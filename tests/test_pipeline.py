"""The whole path in one process: emulator → tailer → store → sender → receiver."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from notifier.store import open_store
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import SECRET, Outcomes, running


async def test_matching_messages_arrive_signed_and_verify_with_standardwebhooks(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config):
    """Each matching message becomes one signed event per webhook; others send nothing."""
    emulator.add_room(key="r1")
    emulator.post("r1", "I want a REFUND!!")
    emulator.post("r1", "hello there")                  # matches nothing
    emulator.post("r1", "it was refunded already")      # not a whole word
    async with running(make_config(rooms=["r1"])):
        await receiver.wait_count(1)
        await emulator.wait_for(lambda emu: len(emu.requests) >= 3)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    Verifier(SECRET).verify(got.body, got.headers)
    assert got.json["type"] == "message.created"
    assert got.json["data"]["rules"] == ["refunds"]
    assert got.json["data"]["message"] == emulator.messages("r1")[0]
    assert got.headers["content-type"] == "application/json"


async def test_one_delivery_per_webhook_lists_every_rule_that_notifies_it(
        emulator, receiver, make_config):
    """A message matching two rules reaches each webhook once, naming its rules."""
    emulator.add_room(key="r1")
    emulator.post("r1", "URGENT: I need a refund")
    async with running(make_config(rooms=["r1"])):
        await receiver.wait_count(2)
        await emulator.wait_for(lambda emu: len(emu.requests) >= 3)
    by_path = {r.path: r.json["data"]["rules"] for r in receiver.received}
    assert by_path == {"/crm": ["refunds", "urgent"], "/mod": ["urgent"]}
    assert len({r.webhook_id for r in receiver.received}) == 2


async def test_an_edit_that_matches_is_delivered_as_message_edited_with_a_new_id(
        emulator, receiver, make_config):
    """An edit found by the lookback scan is a new version with its own webhook-id."""
    emulator.add_room(key="r1")
    first = emulator.post("r1", "I want a refund")
    quiet = emulator.post("r1", "nothing to see")
    async with running(make_config(rooms=["r1"])):
        await receiver.wait_count(1)
        emulator.edit(first["id"], "I want a refund now, urgent")
        emulator.edit(quiet["id"], "actually, cancel my account")
        await receiver.wait_count(4)
    kinds = sorted((r.path, r.json["type"], r.json["data"]["message"]["body"])
                   for r in receiver.received)
    assert kinds == [
        ("/crm", "message.created", "I want a refund"),
        ("/crm", "message.edited", "I want a refund now, urgent"),
        ("/crm", "message.edited", "actually, cancel my account"),
        ("/mod", "message.edited", "I want a refund now, urgent"),
    ]
    assert not receiver.duplicates()


@pytest.mark.parametrize("cursor_mode", ["inclusive", "exclusive"])
@pytest.mark.parametrize("empty_cursor_at_end", [True, False])
async def test_every_message_is_delivered_once_under_either_cursor_reading(
        receiver, tmp_path, cursor_mode, empty_cursor_at_end):
    """Paging with a small page size loses and repeats nothing in every API reading."""
    from tests.conftest import API_KEY, TEST_ENV, config_text

    async with RoomlioEmulator(api_key=API_KEY, cursor_mode=cursor_mode,
                               empty_cursor_at_end=empty_cursor_at_end) as emu:
        emu.add_room(key="r1")
        for i in range(23):
            emu.post("r1", f"refund number {i}")
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, receiver.url, rooms=["r1"],
                                    roomlio={"page_size": 4}))
        import os

        from notifier.delivery.formats import load_config

        config = load_config(str(path), env={**os.environ, **TEST_ENV})
        async with running(config):
            await receiver.wait_count(23)
            for i in range(23, 30):
                emu.post("r1", f"refund number {i}")
            await receiver.wait_count(30)
            await emu.wait_requests(len(emu.requests) + 3)
    bodies = sorted(r.json["data"]["message"]["body"] for r in receiver.received)
    assert bodies == sorted(f"refund number {i}" for i in range(30))


@pytest.mark.parametrize("fault", [
    Fault.status(429), Fault.status(429, retry_after=0.2), Fault.status(500),
    Fault.status(502), Fault.status(503, retry_after=0), Fault.RESET, Fault.TRUNCATED,
    Fault.malformed("missing_id"), Fault.malformed("wrong_type"),
    Fault.HAS_MORE_EMPTY_CURSOR, Fault.DUPLICATE, Fault.REORDER, Fault.overlap(2),
], ids=lambda f: repr(f)[:40])
async def test_roomlio_faults_are_retried_without_loss_or_duplicates(
        emulator, receiver, make_config, fault):
    """A failing or malformed RoomHistory answer is retried; the cursor never skips."""
    emulator.add_room(key="r1")
    for i in range(6):
        emulator.post("r1", f"refund {i}")
    emulator.inject(fault, times=2)
    async with running(make_config(rooms=["r1"], roomlio={"page_size": 2})):
        await receiver.wait_count(6)
        await emulator.wait_for(lambda emu: emu.pending_faults == 0)
        emulator.post("r1", "refund 6")
        await receiver.wait_count(7)
    bodies = sorted(r.json["data"]["message"]["body"] for r in receiver.received)
    assert bodies == [f"refund {i}" for i in range(7)]
    assert not receiver.duplicates()


async def test_a_lost_cursor_resumes_by_time_without_skipping(emulator, receiver, make_config):
    """A 400 for an unknown cursor falls back to `since` and loses nothing."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund a")
    async with running(make_config(rooms=["r1"])):
        await receiver.wait_count(1)
        emulator.inject(Fault.status(400, body={"code": "invalid_cursor",
                                                "message": "unknown cursor"}), room="r1")
        emulator.post("r1", "refund b")
        await receiver.wait_count(2)
    assert sorted(r.json["data"]["message"]["body"] for r in receiver.received) == [
        "refund a", "refund b"]
    assert not receiver.duplicates()


async def test_receiver_errors_are_retried_with_the_same_webhook_id(
        emulator, receiver, make_config):
    """500, 503 with Retry-After and 429 are retried; every attempt carries one id and
    the same body, signed afresh at its own time."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    receiver.inject(Fault.status(500), path="/crm")
    # a wait of over a second: the attempts after it fall in a later second
    receiver.inject(Fault.status(503, retry_after=1.1), path="/crm")
    receiver.inject(Fault.status(429), path="/crm")
    async with running(make_config(rooms=["r1"])):
        await receiver.wait_count(1)
    attempts = [a for a in receiver.attempts if a.path == "/crm"]
    assert [a.status for a in attempts] == [500, 503, 429, 200]
    assert len({a.webhook_id for a in attempts}) == 1
    assert len({a.body for a in attempts}) == 1
    assert all(a.verified for a in attempts)
    stamps = [int(a.headers["webhook-timestamp"]) for a in attempts]
    assert stamps == sorted(stamps) and stamps[2] > stamps[1], f"not signed afresh: {stamps}"


async def test_a_final_4xx_goes_to_the_dead_letters_at_once(emulator, receiver, make_config):
    """A 400 from the receiver is not retried; the delivery is kept as a dead letter."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    receiver.inject(Fault.status(400), path="/crm")
    config = make_config(rooms=["r1"])
    outcomes = Outcomes()
    async with running(config, outcomes):
        await outcomes.wait_for(lambda o: len(o.failed) == 1)
    assert [a.status for a in receiver.attempts] == [400]
    letters = await _dead_letters(config)
    assert [(d.last_status, d.delivery.webhook) for d in letters] == [(400, "crm")]


async def test_exhausted_retries_end_in_the_dead_letters_with_the_last_status(
        emulator, receiver, make_config):
    """After max_attempts failures the delivery is dead-lettered with its last status."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    receiver.set_default_status("/crm", 503)
    config = make_config(rooms=["r1"], delivery={"max_attempts": 3, "max_backoff": "50ms"})
    outcomes = Outcomes()
    async with running(config, outcomes):
        await outcomes.wait_for(lambda o: len(o.failed) == 1)
    assert len([a for a in receiver.attempts if a.path == "/crm"]) == 3
    letters = await _dead_letters(config)
    assert [(d.last_status, d.delivery.attempts) for d in letters] == [(503, 3)]


async def test_a_redirect_is_not_followed(emulator, receiver, make_config, http_client):
    """A 3xx answer is final: the redirect target is never contacted (either HTTP client)."""
    emulator.add_room(key="r1")
    emulator.post("r1", "refund please")
    receiver.inject(Fault.status(302), path="/crm")
    config = make_config(rooms=["r1"], delivery={"http_client": http_client})
    outcomes = Outcomes()
    async with running(config, outcomes):
        await outcomes.wait_for(lambda o: len(o.failed) == 1)
    letters = await _dead_letters(config)
    assert "redirect" in letters[0].last_error
    assert len(receiver.attempts) == 1


async def test_a_failing_room_does_not_hold_up_the_others(emulator, receiver, make_config):
    """A deleted room and a slow room do not stop a healthy room's deliveries."""
    for key in ("dead", "slow", "ok"):
        emulator.add_room(key=key)
    emulator.delete_room("dead")
    emulator.inject(Fault.delay(5), room="slow", times=50)
    emulator.post("ok", "refund from the healthy room")
    async with running(make_config(rooms=["dead", "slow", "ok"])):
        await receiver.wait_count(1, timeout=5)
    assert receiver.received[0].json["data"]["message"]["body"] == "refund from the healthy room"


async def test_a_down_webhook_does_not_hold_up_the_others(emulator, receiver, make_config):
    """While /crm keeps failing, /mod still receives its events promptly."""
    emulator.add_room(key="r1")
    receiver.set_default_status("/crm", 500)
    for i in range(5):
        emulator.post("r1", f"urgent {i}")
    config = make_config(rooms=["r1"], delivery={"max_attempts": 50, "max_backoff": "1s"})
    async with running(config):
        await receiver.wait_count(5, timeout=5)
    assert {r.path for r in receiver.received} == {"/mod"}


async def _dead_letters(config):
    store = open_store(config.state)
    await store.open()
    try:
        return await store.dead_letters()
    finally:
        await store.close()
