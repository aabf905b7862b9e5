"""At-least-once across crashes: SIGKILL `notifier run` at random moments, lose nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

import pytest

from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text, notifier_command

KILLS = int(os.environ.get("NOTIFIER_CRASH_KILLS", "12"))


async def _start(path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *notifier_command("run", "--config", str(path), "--log-level", "WARNING"),
        env={**os.environ, **TEST_ENV}, stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)


def _traffic(emu: RoomlioEmulator, rng: random.Random, posted: list[dict],
             edited: dict[str, dict], n: int) -> None:
    """New matching and non-matching messages, and edits of recent ones."""
    for _ in range(n):
        room = rng.choice(["r1", "r2", "r3"])
        if rng.random() < 0.25:
            emu.post(room, f"just chatting {rng.random()}")
            continue
        posted.append(emu.post(room, f"refund request {len(posted)}"))
        if len(posted) > 3 and rng.random() < 0.3:
            target = rng.choice(posted[-10:])
            if target["id"] not in edited:
                edited[target["id"]] = emu.edit(target["id"], target["body"] + " (edited)")


@pytest.mark.chaos
async def test_sigkill_at_random_moments_loses_no_event(tmp_path):
    """Killed mid-fetch, mid-commit or mid-delivery, every matching version still arrives."""
    rng = random.Random(int(os.environ.get("NOTIFIER_CRASH_SEED", time.time())))
    posted: list[dict] = []
    edited: dict[str, dict] = {}
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        for room in ("r1", "r2", "r3"):
            emu.add_room(key=room)
        emu.set_latency(0.01)
        path = tmp_path / "rules.yaml"
        path.write_text(config_text(emu.url, rx.url, rooms=["r1", "r2", "r3"],
                                    roomlio={"page_size": 3, "edit_scan_interval": "100ms"},
                                    delivery={"max_attempts": 1000, "max_backoff": "100ms"}))
        for _ in range(KILLS):
            _traffic(emu, rng, posted, edited, rng.randint(3, 12))
            rx.inject(Fault.delay(rng.uniform(0, 0.05)), path="/crm", times=rng.randint(1, 5))
            rx.inject(Fault.status(503), path="/crm", times=rng.randint(1, 2))
            proc = await _start(path)
            await asyncio.sleep(rng.uniform(0.3, 1.2))  # a random moment to crash at
            proc.kill()
            assert await proc.wait() == -signal.SIGKILL
        rx.clear_faults()
        expected = {(m["id"], m["editedAt"]) for m in posted} | {
            (m["id"], m["editedAt"]) for m in edited.values()}
        before = len(emu.requests)
        final = await _start(path)
        try:
            await emu.wait_requests(before + 1, timeout=30)  # up and polling
            await rx.wait_for(lambda r: _final_versions(r) >= _must_have(posted, edited),
                              timeout=60)
        finally:
            final.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(final.wait(), 30) == 0
    got = _received_versions(rx)
    dupes = {wid: n for wid, n in rx.duplicates().items()}
    print(f"\ncrash test: {KILLS} SIGKILLs, {len(posted)} matching messages, "
          f"{len(edited)} edits, {len(rx.received)} deliveries to /crm,/mod, "
          f"{len(rx.unique_ids())} unique, {sum(dupes.values()) - len(dupes)} duplicates")
    assert _must_have(posted, edited) <= _final_versions(rx)
    assert got <= expected, "an event for a version that was never posted"
    assert all("refund request" in r.json["data"]["message"]["body"] for r in rx.received)
    _assert_duplicates_share_bodies(rx)


def _received_versions(rx: WebhookReceiver) -> set[tuple[str, str]]:
    return {(r.json["data"]["message"]["id"], r.json["data"]["message"]["editedAt"])
            for r in rx.received if r.path == "/crm"}


def _final_versions(rx: WebhookReceiver) -> set[str]:
    """Message ids whose latest version reached /crm."""
    return {f"{mid}@{edited}" for mid, edited in _received_versions(rx)}


def _must_have(posted: list[dict], edited: dict[str, dict]) -> set[str]:
    """Every message's final version must arrive (an earlier one may be superseded before
    the notifier ever saw it, which is not a loss)."""
    latest = {m["id"]: m["editedAt"] for m in posted}
    latest.update({mid: m["editedAt"] for mid, m in edited.items()})
    return {f"{mid}@{e}" for mid, e in latest.items()}


def _assert_duplicates_share_bodies(rx: WebhookReceiver) -> None:
    bodies: dict[str, bytes] = {}
    for r in rx.received:
        assert r.webhook_id is not None
        assert bodies.setdefault(r.webhook_id, r.body) == r.body, "one id, two bodies"
