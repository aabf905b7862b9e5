"""Token-bucket arithmetic and group windows, with the clock passed in; template rendering."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from notifier.config import Rate
from notifier.delivery.formats.template_render import compile_template, render
from notifier.delivery.grouping import GroupBuffer, GroupDelivery, Grouper, group_of, members_of
from notifier.errors import DeliveryPermanentError
from notifier.events import Delivery
from notifier.util.pacing import TokenBucket
from tests.test_chat_formats import delivery_of


def test_a_bucket_allows_a_burst_of_its_size_then_spaces_turns_evenly() -> None:
    """4/s: four turns now, then one every 250 ms, in order."""
    bucket = TokenBucket(Rate(4, 1.0), now=100.0)
    waits = [bucket.reserve(100.0) for _ in range(7)]
    assert waits == pytest.approx([0, 0, 0, 0, 0.25, 0.5, 0.75])


def test_a_bucket_refills_with_time_but_never_past_its_size() -> None:
    """After a long idle spell only ``requests`` turns are immediate."""
    bucket = TokenBucket(Rate(1, 1.0), now=0.0)
    assert bucket.reserve(0.0) == 0
    assert bucket.reserve(0.5) == pytest.approx(0.5)
    assert bucket.reserve(60.0) == 0
    assert bucket.reserve(60.0) == pytest.approx(1.0)


def test_retry_after_pauses_every_turn_until_it_has_passed() -> None:
    """A 429 with Retry-After: 3 at t=10 holds the next turn until t=13."""
    bucket = TokenBucket(Rate(100, 60.0), now=0.0)
    bucket.pause(10.0, 3.0)
    assert bucket.paused_for(11.0) == pytest.approx(2.0)
    assert bucket.reserve(11.0) == pytest.approx(2.0)
    assert bucket.paused_for(13.5) == 0


def test_a_group_collects_one_rule_and_room_until_its_window_ends() -> None:
    """Same rule and room share a window; another room opens its own."""
    buffer = GroupBuffer(wait=30.0)
    a1, a2 = delivery_of("refund 1", n=1), delivery_of("refund 2", n=2)
    other_room = delivery_of("refund 3", n=3, room="billing")
    assert buffer.add(a1, now=0.0) == 30.0
    assert buffer.add(a2, now=10.0) is None
    assert buffer.add(other_room, now=20.0) == 50.0
    assert buffer.due(29.9) == []
    assert buffer.due(30.0) == [[a1, a2]]
    assert buffer.due(50.0) == [[other_room]]
    assert len(buffer) == 0


def test_a_group_of_one_is_the_delivery_itself_and_a_group_id_is_stable() -> None:
    """One member is sent as itself; a group's id depends only on its members."""
    one = delivery_of(n=1)
    assert group_of([one]) is one
    members = [delivery_of(f"r {i}", n=i) for i in range(3)]
    group = group_of(members)
    assert isinstance(group, GroupDelivery)
    assert group.id == group_of(list(reversed(members))).id != members[0].id
    assert members_of(group) == tuple(members)


def test_a_template_renders_event_message_and_room() -> None:
    """The documented names are there, and tojson makes any body safe in JSON."""
    template = compile_template(
        '{"kind": "{{ event.type }}", "rules": {{ event.rules | tojson }}, '
        '"room": "{{ room }}", "text": {{ message.body | tojson }}}', "t")
    body = render(template, delivery_of('say "hi"\n'), webhook="crm",
                  content_type="application/json")
    assert json.loads(body) == {"kind": "message.created", "rules": ["refunds"],
                                "room": "support-42", "text": 'say "hi"\n'}


@pytest.mark.parametrize(("source", "reason"), [
    ("{{ message.nope }}", "UndefinedError"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ("{{ message.__class__.__mro__ }}", "SecurityError"),
    ('{"text": "{{ message.body }}"}', "rendered invalid JSON"),
])
def test_a_template_that_fails_for_an_event_is_a_permanent_error_with_the_reason(
        source: str, reason: str) -> None:
    """Undefined names, errors, sandbox escapes and broken JSON never send a body."""
    with pytest.raises(DeliveryPermanentError, match=reason):
        render(compile_template(source, "t"), delivery_of('a "quoted" body'), webhook="crm",
               content_type="application/json")


class _EarlyTimersLoop(asyncio.SelectorEventLoop):
    """A loop that runs each timer 2 ms before its time, as uvloop may (it keeps timers
    in whole milliseconds): the loop's clock then still reads before the deadline."""

    def call_at(self, when: float, callback: Any, *args: Any,
                context: Any = None) -> asyncio.TimerHandle:
        return super().call_at(when - 0.002, callback, *args, context=context)


def test_a_group_whose_timer_runs_a_little_early_is_still_sent() -> None:
    """The window's timer fired a hair before the window ends must still send the group
    (before, it found nothing due and the group waited forever: no timer was left)."""
    loop = _EarlyTimersLoop()
    sent: list[Delivery] = []

    async def run() -> None:
        arrived = asyncio.Event()
        grouper = Grouper(0.05, lambda group: (sent.append(group), arrived.set()))
        grouper.add(delivery_of("refund one", n=1))
        grouper.add(delivery_of("refund two", n=2))
        await asyncio.wait_for(arrived.wait(), 2)

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    assert [len(members_of(g)) for g in sent] == [2]
