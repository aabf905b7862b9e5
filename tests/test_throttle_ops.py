"""The API key's throttle as the operator sees it: /metrics and the status page's data."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from notifier.polling.throttle import MIN_EVIDENCE
from notifier.testing import Fault
from tests.opsutil import ops_config, serving


def _samples(text: str) -> dict[str, float]:
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


async def test_metrics_and_status_show_the_learned_rate_requests_and_refusals(
        emulator, receiver, tmp_path) -> None:
    """After one 429: a learned rate, one refusal among the requests counted, an episode
    under way, and the last 10 s's refusals a second, in /metrics and /api/status."""
    emulator.add_room(key="r1")
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"],
                        roomlio={"edit_lookback": 0, "max_poll_interval": "100ms"})
    async with serving(config) as s:
        # enough requests first for a 429 to be evidence of going too fast
        await emulator.wait_requests(MIN_EVIDENCE + 2)
        emulator.inject(Fault.status(429, retry_after=0.2), room="r1")
        await emulator.wait_for(lambda emu: emu.refused == 1
                                and emu.requests[-1].status == 200)
        status, text = await s.get("/metrics")
        _, body = await s.get("/api/status")
        sent = len(emulator.requests)
    assert status == 200
    found = _samples(text)
    api = json.loads(body)["api"]
    assert found["notifier_roomlio_refusals_total"] == api["refusals_total"] == 1
    assert MIN_EVIDENCE + 3 <= found["notifier_roomlio_requests_total"] <= sent
    assert MIN_EVIDENCE + 3 <= api["requests_total"] <= sent
    assert found["notifier_roomlio_learned_rate"] > 0
    assert api["learned_rate"] > 0
    assert found["notifier_roomlio_rate_limited"] == 1 and api["limited"] is True
    assert api["cap"] is None
    ten_seconds = api["windows"][0]
    assert ten_seconds["seconds"] == 10 and ten_seconds["refusals_per_s"] > 0
    assert ten_seconds["requests_per_s"] >= ten_seconds["refusals_per_s"] * (MIN_EVIDENCE + 3)
