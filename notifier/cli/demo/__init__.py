"""``notifier demo``: the real pipeline against the bundled emulator, receiver and rules.

Nothing leaves 127.0.0.1 and nothing is written outside a temporary folder. Output goes
through ``emit`` (the CLI passes ``print``), so this module never prints on its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from notifier.cli.demo.formats import retarget, show
from notifier.delivery.formats import FORMATS, load_config
from notifier.runtime.service import Service
from notifier.testing.chatter import simulate_chatter
from notifier.testing.emulator import RoomlioEmulator
from notifier.testing.keylimit import KeyLimit
from notifier.testing.receiver import Received, WebhookReceiver
from notifier.util.aio import sleep_unless

__all__ = ["DEMO_ROOMS", "run_demo"]

DEMO_ROOMS = ("support-42", "billing", "community")
#: After the chatter stops, wait this long without a new delivery before stopping.
QUIET_PERIOD = 1.5


class _Tally:
    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.by_webhook: Counter[str] = Counter()
        self.by_rule: Counter[str] = Counter()
        self.by_type: Counter[str] = Counter()
        self.unverified = 0
        self.ids: Counter[str] = Counter()
        self.last = time.monotonic()

    def on_receive_raw(self, got: Received) -> None:
        """Count a request of any format and print its body (unsigned is not a failure)."""
        self.last = time.monotonic()
        self.by_webhook[got.path.strip("/")] += 1
        self.ids[str(got.webhook_id)] += 1
        if got.verified is False:
            self.unverified += 1
        show(got, self.emit)

    def on_receive(self, got: Received) -> None:
        self.last = time.monotonic()
        webhook = got.path.strip("/")
        doc: dict[str, Any] = got.json if isinstance(got.json, dict) else {}
        data = doc.get("data", {})
        message = data.get("message", {})
        rules = ",".join(data.get("rules", []))
        self.by_webhook[webhook] += 1
        self.by_type[str(doc.get("type"))] += 1
        self.by_rule.update(data.get("rules", []))
        self.ids[str(got.webhook_id)] += 1
        if not got.verified:
            self.unverified += 1
        body = " ".join(str(message.get("body", "")).split())
        short = body if len(body) <= 48 else body[:47] + "…"
        mark = "signature ok" if got.verified else "SIGNATURE FAILED"
        self.emit(f"{time.strftime('%H:%M:%S')}  {webhook:<10} {rules:<22} "
                  f"{message.get('roomName') or message.get('roomID', ''):<11} "
                  f"{doc.get('type', ''):<16} {message.get('userType', ''):<7} "
                  f'"{short}"  {mark}')

    def summary(self, posted: int, seconds: float) -> list[str]:
        dupes = sum(n - 1 for n in self.ids.values() if n > 1)
        total = sum(self.by_webhook.values())
        lines = [
            "",
            f"demo summary after {seconds:.1f}s: {posted} messages posted, {total} deliveries "
            f"received, {total - self.unverified} with a valid signature, {dupes} duplicate(s)",
        ]
        for title, counter in (("per webhook", self.by_webhook), ("per rule", self.by_rule),
                               ("per type", self.by_type)):
            items = ", ".join(f"{k}: {v}" for k, v in sorted(counter.items()))
            lines.append(f"  {title:<12} {items or '-'}")
        return lines


async def run_demo(*, seconds: float | None, rate: float,
                   install_signals: Callable[[asyncio.Event], None],
                   emit: Callable[[str], None], fmt: str = "standard",
                   api_limit: float | None = None) -> int:
    """Run the demo until ``seconds`` pass or a signal; return the exit code. With
    ``api_limit`` the emulator refuses the key's requests beyond that many a second."""
    api_key = "demo-" + base64.urlsafe_b64encode(os.urandom(12)).decode()
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    tally = _Tally(emit)
    stop = asyncio.Event()
    install_signals(stop)
    with tempfile.TemporaryDirectory(prefix="notifier-demo-") as tmp:
        limit = KeyLimit(api_limit) if api_limit else None
        async with RoomlioEmulator(api_key=api_key, rate_limit=limit) as emulator, \
                WebhookReceiver({} if not FORMATS[fmt].signed else
                                {"/crm": secret, "/moderators": secret}) as receiver:
            for key in DEMO_ROOMS:
                emulator.add_room(key=key)
            _seed(emulator)
            receiver.on_receive = (tally.on_receive if fmt == "standard"
                                   else tally.on_receive_raw)
            env = {**os.environ, "DEMO_ROOMLIO_URL": emulator.url, "DEMO_API_KEY": api_key,
                   "DEMO_RECEIVER_URL": receiver.url, "DEMO_SECRET": secret,
                   "DEMO_STATE": os.path.join(tmp, "demo.db")}
            rules = resources.files("notifier.cli.demo").joinpath("rules.yaml")
            with resources.as_file(rules) as path:
                if fmt != "standard":
                    path = Path(tmp, "rules.yaml")
                    path.write_text(retarget(rules.read_text(encoding="utf-8"), fmt))
                config = load_config(str(path), env=env)
            emit(f"demo: Roomlio emulator at {emulator.url}, receiver at {receiver.url}, "
                 f"{len(DEMO_ROOMS)} rooms, {len(config.rules)} rules; Ctrl-C to stop")
            emit(f"{'time':<9} {'webhook':<10} {'rules':<22} {'room':<11} {'type':<16} "
                 f"{'sender':<7} body")
            started = time.monotonic()
            await _run(config, emulator, rate, seconds, stop, tally)
            for line in tally.summary(_posted(emulator), time.monotonic() - started):
                emit(line)
            if limit is not None:
                emit(f"  {'roomlio api':<12} {len(emulator.requests)} requests, "
                     f"{emulator.refused} refused (429) at a limit of {limit.rate:g}/s")
    return 0 if tally.unverified == 0 else 1


async def _run(config: Any, emulator: RoomlioEmulator, rate: float, seconds: float | None,
               stop: asyncio.Event, tally: _Tally) -> None:
    chatter_stop = asyncio.Event()
    service_stop = asyncio.Event()
    chatter = asyncio.create_task(simulate_chatter(
        emulator, list(DEMO_ROOMS), rate=rate, rng=random.Random(), stop=chatter_stop))
    service = asyncio.create_task(Service(config).run(service_stop))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_first(stop, service), timeout=seconds)
        chatter_stop.set()
        await chatter
        if not stop.is_set() and not service.done():
            await _quiet(tally, stop)
    finally:
        chatter_stop.set()
        service_stop.set()
        await service


async def _first(stop: asyncio.Event, service: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, service], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


async def _quiet(tally: _Tally, stop: asyncio.Event) -> None:
    """Let the last matches arrive: wait until no delivery came for QUIET_PERIOD."""
    while time.monotonic() - tally.last < QUIET_PERIOD and not stop.is_set():
        await sleep_unless(stop, QUIET_PERIOD / 3)


def _seed(emulator: RoomlioEmulator) -> None:
    """A few messages already waiting, so the first deliveries show at once."""
    emulator.post("support-42", "Hi, I'd like a refund for order #4127, it arrived broken")
    emulator.post("billing", "URGENT: I was charged twice this month")
    emulator.post("community", "Welcome to the community room!", user_type="admin")
    emulator.post("support-42", "Alex joined the conversation", user_type="admin",
                  message_type="system")


def _posted(emulator: RoomlioEmulator) -> int:
    return sum(len(emulator.messages(room)) for room in DEMO_ROOMS)
