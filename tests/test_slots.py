"""Slots: a webhook's requests in flight, at most n at once, admitted in order, and no
slot lost to a cancellation (shutdown cancels delivery tasks at any point)."""

from __future__ import annotations

import asyncio

from notifier.delivery.ratelimit import Slots


async def _hold(slots: Slots, name: str, log: list[str], release: asyncio.Event,
                entered: dict[str, asyncio.Event] | None = None) -> None:
    async with slots:
        log.append(name)
        if entered is not None:
            entered[name].set()
        await release.wait()


async def test_at_most_n_hold_a_slot_and_the_rest_go_in_the_order_they_came():
    slots, log = Slots(2), []
    gates = {n: asyncio.Event() for n in "abcde"}
    entered = {n: asyncio.Event() for n in "abcde"}
    tasks = [asyncio.create_task(_hold(slots, n, log, gates[n], entered)) for n in "abcde"]
    await asyncio.sleep(0)
    assert log == ["a", "b"]
    for done, admitted in (("b", "c"), ("a", "d"), ("c", "e")):
        gates[done].set()
        async with asyncio.timeout(5):
            await entered[admitted].wait()
        assert log[-1] == admitted
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*tasks)
    assert log == ["a", "b", "c", "d", "e"] and slots.free == 2


async def test_a_waiter_cancelled_in_the_queue_takes_no_slot():
    slots, log, gate = Slots(1), [], asyncio.Event()
    holder = asyncio.create_task(_hold(slots, "a", log, gate))
    queued = asyncio.create_task(_hold(slots, "b", log, gate))
    after = asyncio.create_task(_hold(slots, "c", log, gate))
    await asyncio.sleep(0)
    queued.cancel()
    gate.set()
    async with asyncio.timeout(5):
        await asyncio.gather(holder, after)
    assert queued.cancelled() and log == ["a", "c"] and slots.free == 1


async def test_a_waiter_cancelled_after_it_was_handed_the_slot_passes_it_on():
    """The slot released by the test goes to ``b``, cancelled before it runs: ``c`` gets it."""
    slots, log, gate = Slots(1), [], asyncio.Event()
    await slots.__aenter__()
    handed = asyncio.create_task(_hold(slots, "b", log, gate))
    after = asyncio.create_task(_hold(slots, "c", log, gate))
    await asyncio.sleep(0)
    await slots.__aexit__(None, None, None)  # hands the slot to b, which has not run yet
    handed.cancel()
    gate.set()
    async with asyncio.timeout(5):
        await after
    assert handed.cancelled() and log == ["c"] and slots.free == 1


async def test_a_waiter_cancelled_then_skipped_by_a_release_ends_cancelled():
    """``b`` is cancelled while queued, and a release passes over its cancelled turn
    before ``b`` runs (a shutdown cancels every task at once): ``b`` ends cancelled, not
    with an error, and the slot is free."""
    slots, log, gate = Slots(1), [], asyncio.Event()
    await slots.__aenter__()
    queued = asyncio.create_task(_hold(slots, "b", log, gate))
    await asyncio.sleep(0)
    queued.cancel()  # cancels b's future at once; b itself runs later
    await slots.__aexit__(None, None, None)  # skips b's cancelled turn: the slot is free
    await asyncio.gather(queued, return_exceptions=True)
    assert queued.cancelled() and log == [] and slots.free == 1
