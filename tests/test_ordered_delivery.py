"""`ordered: true` against the real emulator and receiver: each room's events reach the
webhook one at a time and in order, through 500s, retries and dead letters."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from notifier.errors import ConfigError
from notifier.store import open_store
from notifier.testing import RoomlioEmulator, WebhookReceiver
from notifier.testing.faults import Fault
from tests.conftest import Outcomes, running

ROOMS = ("r1", "r2", "r3")


def per_room(receiver: WebhookReceiver, path: str, *, accepted: bool) -> dict[str, list[int]]:
    """The message numbers each room's requests to ``path`` carried, in arrival order
    (bodies are ``refund <room>-<n>``); only 2xx answers when ``accepted``."""
    seen: dict[str, list[int]] = defaultdict(list)
    for r in receiver.received if accepted else receiver.attempts:
        if r.path == path and r.json is not None:
            room, n = r.json["data"]["message"]["body"].split()[1].split("-")
            seen[room].append(int(n))
    return dict(seen)


def post(emulator: RoomlioEmulator, room: str, numbers: range) -> None:
    for n in numbers:
        emulator.post(room, f"refund {room}-{n:02d}")


def ordered_crm(receiver: WebhookReceiver, schedule: list[str]) -> dict[str, object]:
    return {"crm": {"url": f"{receiver.url}/crm", "secret": "${TEST_SECRET}",
                    "ordered": True, "retry_schedule": schedule}}


async def test_each_rooms_events_arrive_in_order_through_500s(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config):
    """With 500s injected at the start and in the middle, every room's events are
    attempted and accepted strictly in the order they were posted, none lost."""
    for room in ROOMS:
        emulator.add_room(key=room)
        post(emulator, room, range(1, 7))
    receiver.inject(Fault.status(500), path="/crm", times=6)
    config = make_config(rooms=list(ROOMS), webhooks=ordered_crm(receiver, ["20ms"] * 8))
    assert config.webhooks["crm"].ordered and not config.webhooks["mod"].ordered
    async with running(config):
        await receiver.wait_for(lambda r: sum(map(len, per_room(
            r, "/crm", accepted=True).values())) >= 9, timeout=20)
        receiver.inject(Fault.status(500), path="/crm", times=5)
        for room in ROOMS:
            post(emulator, room, range(7, 11))
        await receiver.wait_for(lambda r: sum(map(len, per_room(
            r, "/crm", accepted=True).values())) >= 30, timeout=20)
    assert sum(a.status == 500 for a in receiver.attempts) == 11
    accepted = per_room(receiver, "/crm", accepted=True)
    assert accepted == {room: list(range(1, 11)) for room in ROOMS}
    for room, attempts in per_room(receiver, "/crm", accepted=False).items():
        assert attempts == sorted(attempts), f"{room} was sent out of order: {attempts}"


async def test_a_dead_lettered_event_stops_blocking_its_room(
        emulator: RoomlioEmulator, receiver: WebhookReceiver, make_config):
    """An event that runs out of attempts is dead-lettered, and the room's later events
    follow it in order; none of them was attempted while it was being retried."""
    emulator.add_room(key="r1")
    post(emulator, "r1", range(1, 5))
    receiver.inject(Fault.status(500), path="/crm", times=3)
    config = make_config(rooms=["r1"], webhooks=ordered_crm(receiver, ["20ms", "20ms"]))
    outcomes = Outcomes()
    async with running(config, outcomes):
        await outcomes.wait_for(lambda o: sum(x.delivery.webhook == "crm" for x in o.items) == 4)
    assert per_room(receiver, "/crm", accepted=False) == {"r1": [1, 1, 1, 2, 3, 4]}
    assert per_room(receiver, "/crm", accepted=True) == {"r1": [2, 3, 4]}
    async with open_store(config.state) as store:
        [dead] = await store.dead_letters()
    assert dead.delivery.event.message["body"] == "refund r1-01"


def test_ordered_is_a_boolean_defaulting_to_false_and_refuses_group_wait(make_config):
    """`ordered` inherits from `delivery`, must be a boolean, and is refused beside
    group_wait (one event per room at a time leaves nothing to group), with file:line."""
    config = make_config(rooms=["r1"], delivery={"ordered": True},
                         webhooks={"mod": {"url": "http://127.0.0.1:9/mod", "ordered": False}})
    assert config.webhooks["crm"].ordered and not config.webhooks["mod"].ordered
    assert not make_config(rooms=["r1"]).webhooks["crm"].ordered
    chat = {"url": "http://127.0.0.1:9/chat", "format": "slack", "group_wait": "5s",
            "ordered": True}
    with pytest.raises(ConfigError) as error:
        make_config(rooms=["r1"], webhooks={"chat": chat, "mod": {
            "url": "http://127.0.0.1:9/mod", "ordered": "yes"}})
    text = str(error.value)
    assert re.search(r"rules\.yaml:\d+: webhooks\.chat\.group_wait: an ordered webhook", text)
    assert re.search(r"rules\.yaml:\d+: webhooks\.mod\.ordered: must be", text), text
