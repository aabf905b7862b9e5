"""Room leases: the fair-share plan (pure) and fencing in the PostgreSQL store."""

from __future__ import annotations

import asyncio

import pytest

from notifier.errors import LeaseLost
from notifier.events import CREATED, Delivery, Event
from notifier.polling.leases import LeasePlan, fair_share, plan
from notifier.store import RoomState
from notifier.store.postgres import PostgresStore

ROOMS = [f"r{i}" for i in range(10)]


@pytest.mark.parametrize(("rooms", "live", "share"), [
    (60, 1, 60), (60, 3, 20), (61, 3, 21), (2, 3, 1), (0, 2, 0), (5, 0, 5)])
def test_fair_share_is_the_ceiling_of_rooms_per_live_instance(rooms: int, live: int,
                                                                share: int) -> None:
    """Each instance holds at most ceil(rooms / live) rooms."""
    assert fair_share(rooms, live) == share


@pytest.mark.parametrize(("held", "live", "expected"), [
    (set(), 1, LeasePlan((), 10)),
    (set(ROOMS), 1, LeasePlan((), 0)),
    (set(ROOMS), 2, LeasePlan(("r5", "r6", "r7", "r8", "r9"), 0)),
    ({"r1", "r2"}, 3, LeasePlan((), 2)),
    ({"r1", "r2", "r3", "r4"}, 3, LeasePlan((), 0)),
    ({"r1", "r2", "r3", "r4", "r5"}, 3, LeasePlan(("r5",), 0)),
])
def test_plan_sheds_beyond_the_fair_share_and_claims_up_to_it(
        held: set[str], live: int, expected: LeasePlan) -> None:
    """A newcomer makes the others shed their surplus; a short instance claims the rest."""
    assert plan(held, len(ROOMS), live) == expected


def _delivery(n: int, room: str = "r1") -> Delivery:
    event = Event.from_message(CREATED, room, {"id": f"m{n}"}, ("rule",), 1.0)
    return Delivery.for_webhook(event, "crm", ("rule",))


async def _claim_when_free(store: PostgresStore, room: str, ttl: float) -> None:
    async with asyncio.timeout(10):
        # the lease expires on the database's clock: nothing to await but the database
        while await store.claim_rooms([room], 1, ttl) != [room]:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_commit_with_an_expired_lease_taken_over_is_refused(pg_url: str) -> None:
    """Once another instance took the room, the old holder's commit writes nothing: the
    cursor does not move back and no event is enqueued twice."""
    async with PostgresStore(pg_url, instance="a", exclusive=True) as a, \
            PostgresStore(pg_url, instance="b", exclusive=True) as b:
        await a.heartbeat(0.3)
        assert await a.claim_rooms(["r1"], 1, 0.3) == ["r1"]
        await a.commit(RoomState("r1", cursor="c1"), [_delivery(1)])
        await b.heartbeat(30)
        await _claim_when_free(b, "r1", 30)  # a is "paused" past its TTL
        await b.commit(RoomState("r1", cursor="c2"), [_delivery(2)])
        with pytest.raises(LeaseLost, match="r1"):
            await a.commit(RoomState("r1", cursor="c1-stale"), [_delivery(2), _delivery(3)])
        assert await b.load_room("r1") == RoomState("r1", cursor="c2")
        assert (await b.stats()).outbox == 2
        held, live = await a.heartbeat(30)  # a wakes up: it holds nothing any more
        assert (held, live) == (set(), 2)


async def test_commit_without_a_lease_is_refused_for_a_runner(pg_url: str) -> None:
    """A runner may not write for a room it never leased; an inspection store may."""
    async with PostgresStore(pg_url, instance="a", exclusive=True) as runner, \
            PostgresStore(pg_url, instance="cli") as cli:
        with pytest.raises(LeaseLost):
            await runner.commit(None, [_delivery(1, room="r9")])
        assert await cli.commit(None, [_delivery(1, room="r9")]) == [_delivery(1, room="r9")]


async def test_released_rooms_and_a_departed_instance_free_their_leases(pg_url: str) -> None:
    """release_rooms and leave hand rooms back at once, without waiting for the TTL."""
    async with PostgresStore(pg_url, instance="a", exclusive=True) as a, \
            PostgresStore(pg_url, instance="b", exclusive=True) as b:
        await a.heartbeat(30)
        assert await a.claim_rooms(ROOMS[:4], 10, 30) == ROOMS[:4]
        assert await b.claim_rooms(ROOMS[:4], 10, 30) == []
        await a.release_rooms(["r0"])
        assert await b.claim_rooms(ROOMS[:4], 10, 30) == ["r0"]
        await a.leave()
        assert await b.claim_rooms(ROOMS[:4], 10, 30) == ROOMS[1:4]


async def test_claims_of_a_dead_instance_lapse_with_its_registration(pg_url: str) -> None:
    """A delivery claimed by an instance that stopped renewing is claimable by another."""
    async with PostgresStore(pg_url, instance="a") as a, \
            PostgresStore(pg_url, instance="b") as b:
        await a.heartbeat(0.3)
        await a.commit(None, [_delivery(1)])
        assert len(await a.claim_due(1e12, 10)) == 1
        assert await b.claim_due(1e12, 10) == []
        async with asyncio.timeout(10):
            while not (taken := await b.claim_due(1e12, 10)):  # noqa: ASYNC110 - the DB clock
                await asyncio.sleep(0.05)
        assert [d.id for d in taken] == [_delivery(1).id]


async def test_two_instances_migrating_together_both_open(pg_url: str) -> None:
    """Instances starting at the same moment migrate once and both reach the version."""
    stores = [PostgresStore(pg_url, instance=f"i{n}") for n in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        versions = {s.schema_version[1] for s in stores if s.schema_version}
        assert len(versions) == 1
        assert sorted(s.schema_version[0] for s in stores if s.schema_version).count(0) == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))
