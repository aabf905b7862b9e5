"""The emulator's per-key rate limit: a token bucket per API key, 429 with Retry-After."""

from __future__ import annotations

import json

import aiohttp
import pytest

from notifier.testing import KeyLimit, RoomlioEmulator
from notifier.testing.keylimit import KeyLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_key_gets_its_own_bucket_refilled_at_the_rate() -> None:
    """A key's burst is spent alone; another key still has its own; time refills it."""
    clock = Clock()
    limiter = KeyLimiter(KeyLimit(rate=2, burst=3), clock=clock)
    assert [limiter.admit("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.admit("b")
    clock.now += 0.5  # one token at 2/s
    assert [limiter.admit("a") for _ in range(2)] == [True, False]
    clock.now += 10  # refills to the burst, not beyond
    assert [limiter.admit("a") for _ in range(4)] == [True, True, True, False]


def test_a_refused_request_costs_no_token() -> None:
    """Hammering an empty bucket does not push the next admission further out."""
    clock = Clock()
    limiter = KeyLimiter(KeyLimit(rate=1, burst=1), clock=clock)
    assert limiter.admit("a")
    for _ in range(10):
        assert not limiter.admit("a")
    clock.now += 1.0
    assert limiter.admit("a")


@pytest.mark.parametrize("bad", [{"rate": 0}, {"rate": 1, "burst": 0.5},
                                 {"rate": 1, "retry_after": -1}])
def test_a_nonsense_limit_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        KeyLimit(**bad)


async def test_requests_beyond_the_limit_get_429_with_retry_after() -> None:
    """Over HTTP: the burst is served, the next request is refused with the header and a
    Roomlio-style body; lifting the limit serves again."""
    async with RoomlioEmulator(rate_limit=KeyLimit(rate=0.001, burst=3, retry_after=1)) as emu, \
            aiohttp.ClientSession() as session:
        room = emu.add_room()

        async def ask() -> tuple[int, str | None, bytes]:
            async with session.post(f"{emu.url}/RoomHistory", json={"roomID": room},
                                    headers={"Authorization": "Bearer test-key"}) as resp:
                return resp.status, resp.headers.get("Retry-After"), await resp.read()

        assert [(await ask())[0] for _ in range(3)] == [200, 200, 200]
        status, retry_after, body = await ask()
        assert (status, retry_after) == (429, "1")
        assert json.loads(body)["code"] == "resource_exhausted"
        assert emu.refused == 1
        emu.limit_rate(None)
        assert (await ask())[0] == 200
