"""A webhook's saved health keeps its last success exact, however its successes are noted.

Steady successes are noted without saving (at most one save a minute); the state saved
at the next change (a failure starting a streak) carries the last success's time, not
the time of the last save.
"""

from __future__ import annotations

from notifier.config import Webhook
from notifier.delivery.health import WebhookHealth
from notifier.store.sqlite import SQLiteStore


async def test_the_state_saved_at_a_failure_carries_the_last_success_not_the_last_save(
        tmp_path) -> None:
    now = [1000.0]
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.open()
    try:
        health = WebhookHealth(Webhook("crm", url="https://example.com/hook"), store,
                               clock=lambda: now[0])
        for t in (1000.0, 1010.0, 1020.0):  # the first is saved, the others only noted
            now[0] = t
            await health.record(True, 200, probe=False)
        assert (await store.webhook_states())["crm"].last_success_at == 1000.0
        now[0] = 1030.0
        await health.record(False, 503, probe=False)  # a streak starts: saved
        saved = (await store.webhook_states())["crm"]
        assert saved.failing_since == 1030.0
        assert saved.last_success_at == 1020.0
        now[0] = 1040.0
        await health.record(True, 200, probe=False)  # the streak ends: saved
        saved = (await store.webhook_states())["crm"]
        assert (saved.failing_since, saved.last_success_at) == (None, 1040.0)
        for t in (1050.0, 1100.0):  # noted; then a minute after the last save: saved
            now[0] = t
            await health.record(True, 200, probe=False)
        assert (await store.webhook_states())["crm"].last_success_at == 1100.0
    finally:
        await store.close()
