"""A page waits for room in the lanes it feeds, so that a backlog streams through the
hand-off instead of through the outbox.

When the tailers read a backlog faster than a webhook takes it, a page whose lane is full
leaves its deliveries in the outbox, to be claimed, read and decoded again when the lane
drains (what that costs: bench/RESULTS.md, issue 16). Instead, the page waits before
its commit until a lane it feeds has room for its share. Its tailer reads no further
meanwhile (one page read ahead at most), so the backlog waits in Roomlio, memory stays
bounded by the lanes' capacity, and the deliveries start from memory.

The wait never holds up what could go, and never for long:

* a page waits only when none of the lanes it could hand off to has room for its share;
  a lane that cannot take any hand-off (ordered, grouped, its breaker open, disabled) is
  not waited for;
* it waits while the lanes make progress: when none of them finished a delivery for
  ``STALL`` seconds, or after ``MAX_WAIT``, the page is committed as before (what does
  not fit waits in the outbox), and no page waits for those lanes for ``CONGESTED_FOR``
  seconds. A receiver that hangs or slows down costs a room one stalled wait in that
  time, not one a page;
* a waiting page holds one of the scheduler's poll slots (64): at most ``MAX_WAITING``
  pages wait at once, so the rooms of other webhooks always find slots to poll in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from notifier.delivery.lanes import WebhookLane

__all__ = ["CONGESTED_FOR", "MAX_WAIT", "MAX_WAITING", "STALL", "Short", "short_of_room",
           "wait_for_room"]

log = logging.getLogger("notifier.delivery")

#: A page stops waiting when no lane it waits for finished a delivery for this long.
STALL = 1.0
#: The longest a page waits for room, however its lanes progress.
MAX_WAIT = 5.0
#: After a page stopped waiting for them, no page waits for those lanes for this long.
CONGESTED_FOR = 30.0
#: Pages waiting at once, at most: half the poll slots (notifier.polling.scheduler's 64).
MAX_WAITING = 32

#: Each lane a page waits for, with the room the page needs there.
Short = list[tuple[WebhookLane, int]]


def short_of_room(shares: Mapping[str, int], lanes: Mapping[str, WebhookLane],
                  claimable: Callable[[str], bool]) -> Short | None:
    """The lanes a page with ``shares`` (webhook -> its deliveries) waits for: each that
    could take a hand-off (``claimable``: its breaker admits, it is enabled), when none of
    them has room for its share (up to half its capacity); None when one has, or none
    could."""
    short: Short = []
    now = asyncio.get_running_loop().time()
    for name, share in shares.items():
        lane = lanes.get(name)
        if (lane is None or not lane.hands_off or lane.congested_until > now
                or not claimable(name)):
            continue
        need = min(share, lane.capacity // 2)
        if lane.room() >= need:
            return None
        short.append((lane, need))
    return short or None


async def wait_for_room(short: Callable[[], Short | None]) -> None:
    """Wait until ``short()`` (the lanes a page would wait for now, None: none) is None, or
    until its lanes stall (``STALL``) or the wait is ``MAX_WAIT`` long; then those lanes
    are congested for ``CONGESTED_FOR`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_WAIT
    while (lanes := short()) is not None:
        progress = [lane.delivered for lane, _ in lanes]
        waiter: asyncio.Future[None] = loop.create_future()
        for lane, need in lanes:
            lane.wait_for(need, waiter)
        try:
            await asyncio.wait([waiter], timeout=min(STALL, deadline - loop.time()))
        finally:
            waiter.cancel()
            for lane, _ in lanes:
                lane.unwait(waiter)
        if waiter.cancelled():  # not woken: the time ran out
            now = loop.time()
            moved = any(lane.delivered != seen
                        for (lane, _), seen in zip(lanes, progress, strict=True))
            if now >= deadline or not moved:
                for lane, _ in lanes:
                    lane.congested_until = now + CONGESTED_FOR
                    log.debug("webhook %s does not drain fast enough: pages do not wait "
                              "for room in its lane for %gs", lane.webhook.name, CONGESTED_FOR)
                return
