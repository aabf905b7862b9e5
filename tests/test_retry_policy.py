"""The Retry policy: tenacity's retry, stop and wait objects decide after every failed
attempt (the first included), and one policy serves many concurrent calls."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from tenacity import RetryCallState, retry_if_exception_message
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from notifier.delivery.sender import Sender
from notifier.events import Delivery, Event
from notifier.store.sqlite import SQLiteStore
from notifier.testing import WebhookReceiver
from notifier.util.backoff import Retry
from tests.conftest import Outcomes


class Transient(Exception):
    pass


class _Stop(stop_base):
    """Stops after ``limit`` attempts, and remembers each attempt it was asked about."""

    def __init__(self, limit: int) -> None:
        self.limit, self.asked = limit, []

    def __call__(self, state: RetryCallState) -> bool:
        assert state.outcome is not None and state.outcome.failed
        self.asked.append(state.attempt_number)
        return state.attempt_number >= self.limit


class _Wait(wait_base):
    """Waits ten times the attempt number, and remembers each attempt it was asked about."""

    def __init__(self) -> None:
        self.asked = []

    def __call__(self, state: RetryCallState) -> float:
        self.asked.append(state.attempt_number)
        return 10.0 * state.attempt_number


def _failing(calls: list[int], exc: BaseException, *, succeed_at: int | None = None):
    async def attempt(number: int) -> str:
        calls.append(number)
        if number == succeed_at:
            return f"ok at {number}"
        raise exc
    return attempt


async def test_tenacity_stop_and_wait_decide_after_every_failure_the_first_included():
    """A custom stop and wait are asked after attempt 1's failure as after the others:
    the sleeps are the wait's answers, the loop ends when the stop says so."""
    stop, wait, slept = _Stop(3), _Wait(), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls: list[int] = []
    policy: Retry[str] = Retry(Transient, wait=wait, stop=stop, sleep=sleep)
    with pytest.raises(Transient, match="down"):
        await policy.call(_failing(calls, Transient("down")))
    assert calls == [1, 2, 3]
    assert stop.asked == [1, 2, 3]
    assert wait.asked == [1, 2, 3]  # asked before stop, as AsyncRetrying does
    assert slept == [10.0, 20.0]


async def test_a_stop_that_stops_at_once_leaves_one_attempt():
    """stop_after_attempt(1) given as a tenacity object: attempt 1's failure is final."""
    from tenacity import stop_after_attempt, wait_none

    calls: list[int] = []
    policy: Retry[str] = Retry(Transient, wait=wait_none(), stop=stop_after_attempt(1))
    with pytest.raises(Transient):
        await policy.call(_failing(calls, Transient("x")))
    assert calls == [1]


async def test_a_tenacity_retry_predicate_decides_which_errors_are_retried():
    """A retry object (not only an error class) is honoured: a message it declines is
    raised after one attempt, as it is."""
    from tenacity import wait_none

    policy: Retry[str] = Retry(retry_if_exception_message(match="again"), wait=wait_none(),
                               attempts=5)
    calls: list[int] = []
    error = Transient("final")
    with pytest.raises(Transient) as raised:
        await policy.call(_failing(calls, error))
    assert raised.value is error and calls == [1]
    calls.clear()
    assert await policy.call(_failing(calls, Transient("again"), succeed_at=3)) == "ok at 3"
    assert calls == [1, 2, 3]


async def test_attempts_made_earlier_count_toward_stop_and_wait():
    """``first``: a delivery resumed after a restart at attempt 4 of 5 gets two attempts,
    and its waits continue from attempt 4."""
    wait, slept = _Wait(), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls: list[int] = []
    policy: Retry[str] = Retry(Transient, wait=wait, attempts=5, sleep=sleep)
    with pytest.raises(Transient):
        await policy.call(_failing(calls, Transient("x")), first=4)
    assert calls == [4, 5]
    assert slept == [40.0]


async def test_before_sleep_sees_the_failure_the_wait_and_the_call_args():
    seen: list[tuple[object, int, float, str]] = []

    async def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        seen.append((state.args[0], state.attempt_number, state.next_action.sleep,
                     str(state.outcome.exception())))

    async def sleep(_seconds: float) -> None:
        return None

    policy: Retry[str] = Retry(Transient, wait=_Wait(), attempts=3, before_sleep=before_sleep,
                               sleep=sleep)
    with pytest.raises(Transient):
        await policy.call(_failing([], Transient("boom")), args=("delivery-1",))
    assert seen == [("delivery-1", 1, 10.0, "boom"), ("delivery-1", 2, 20.0, "boom")]


async def test_one_policy_serves_concurrent_calls_each_with_its_own_count():
    """Built once per webhook, a policy is shared: calls that interleave (one sleeps while
    the other fails) keep their own attempt numbers and budgets."""
    gates = {name: asyncio.Event() for name in "ab"}
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    policy: Retry[str] = Retry(Transient, wait=_Wait(), attempts=3, sleep=sleep)
    calls: dict[str, list[int]] = {"a": [], "b": []}

    def attempt_of(name: str):
        async def attempt(number: int) -> str:
            calls[name].append(number)
            await asyncio.sleep(0)
            if name == "a" and number == 2:
                gates["a"].set()
                return "a done"
            raise Transient(name)
        return attempt

    a = asyncio.create_task(policy.call(attempt_of("a")))
    b = asyncio.create_task(policy.call(attempt_of("b"), first=2))
    assert await a == "a done"
    with pytest.raises(Transient):
        await b
    assert calls == {"a": [1, 2], "b": [2, 3]}
    assert sorted(slept) == [10.0, 20.0]


async def test_a_success_returns_without_asking_tenacity_anything():
    stop, wait = _Stop(1), _Wait()
    policy: Retry[str] = Retry(Transient, wait=wait, stop=stop)
    assert await policy.call(_failing([], Transient("x"), succeed_at=1)) == "ok at 1"
    assert stop.asked == [] and wait.asked == []


async def test_a_delivery_resumed_after_a_restart_spends_only_what_is_left_of_its_budget(
        make_config, receiver: WebhookReceiver):
    """A delivery that an earlier run tried 3 times (its outbox row says so) gets attempts 4
    and 5 of max_attempts 5, then is dead-lettered as attempt 5: the policy built once for
    the webhook numbers each delivery's attempts from its row."""
    config = make_config(rooms=["r1"], delivery={"max_attempts": 5, "max_backoff": "10ms"})
    receiver.set_default_status("/crm", 503)
    message = {"id": "msg_00000000000000000001", "body": "refund", "userID": "usr_1",
               "createdAt": "2026-11-25T10:00:02Z", "editedAt": "0001-01-01T00:00:00Z"}
    event = Event.from_message("message.created", "r1", message, ("refunds",), time.time())
    resumed = dataclasses.replace(Delivery.for_webhook(event, "crm", ("refunds",)), attempts=3)
    outcomes = Outcomes()
    store = SQLiteStore(config.state)
    await store.open()
    try:
        await store.commit_page(None, [resumed], [])
        sender = Sender(config.webhooks, store, on_outcome=outcomes)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        await outcomes.wait_for(lambda o: len(o.failed) == 1)
        stop.set()
        sender.poke()
        await task
        await sender.shutdown(1)
        assert len(receiver.attempts) == 2
        assert outcomes.failed[0].attempts == 5
        [letter] = await store.dead_letters()
        assert letter.delivery.attempts == 5
    finally:
        await store.close()
