"""What the chaos tests share: traffic whose every expected event is known in advance,
the figures a run ends with, and small awaitable helpers.

Bodies are built so that matching is known by construction, not by asking the code under
test: with the default rules (``refunds`` → crm, ``urgent`` → crm + mod), a body
``"refund #12"`` must reach crm only, ``"urgent #3"`` crm and mod, ``"chat #7"`` nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from notifier.config import Config
from notifier.delivery.formats import load_config
from notifier.runtime.service import Service, ServiceHooks
from notifier.store import Store
from notifier.testing import Fault, RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text
from tests.repeats import NO_REPEATS, Repeats, unexplained

T = TypeVar("T")

#: Which webhooks a body of each kind must reach, and the rules each delivery lists.
ROUTES: dict[str, dict[str, tuple[str, ...]]] = {
    "refund": {"crm": ("refunds",)},
    "urgent": {"crm": ("urgent",), "mod": ("urgent",)},
    "chat": {},
}
URL_TOKEN = "urltoken-" + "u" * 20
HEADER_TOKEN = "headertoken-" + "h" * 20
#: Delivery settings for chaos runs: retry until it works, quickly. The circuit breaker
#: stays on, with a short cooldown so that a run does not wait out a minute.
PATIENT: dict[str, Any] = {"max_attempts": 1000, "max_backoff": "200ms",
                           "breaker_cooldown": "300ms"}
#: Strings that must never appear in a log line or an error message.
SECRETS = (API_KEY, SECRET, SECRET.removeprefix("whsec_"), URL_TOKEN, HEADER_TOKEN)


def webhooks_with_tokens(receiver_url: str, **overrides: Any) -> dict[str, Any]:
    """crm and mod, with a token in the URL and in a header (neither may be logged)."""
    return {
        name: {"url": f"{receiver_url}/{name}?token={URL_TOKEN}", "secret": "${TEST_SECRET}",
               "headers": {"Authorization": f"Bearer {HEADER_TOKEN}"}, **overrides}
        for name in ("crm", "mod")
    }


def write_config(tmp_path: Path, emulator_url: str, receiver_url: str, *,
                 load: bool = True, **kwargs: Any) -> Config | Path:
    """Write rules.yaml (webhooks carry tokens unless given) and load it, or return its path."""
    kwargs.setdefault("webhooks", webhooks_with_tokens(receiver_url))
    path = tmp_path / "rules.yaml"
    path.write_text(config_text(emulator_url, receiver_url, **kwargs))
    if not load:
        return path
    return load_config(str(path), env={**os.environ, **TEST_ENV})


def assert_no_secrets(text: str, where: str) -> None:
    """No API key, webhook secret, URL token or header value in ``text``."""
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret ({secret[:8]}…)"


def chaos_seed() -> int:
    """The seed of a run's random choices: NOTIFIER_CHAOS_SEED replays one (as far as
    timing allows), otherwise a fresh one, printed with the figures."""
    given = os.environ.get("NOTIFIER_CHAOS_SEED") or os.environ.get("NOTIFIER_CRASH_SEED")
    return int(given) if given else random.randrange(2**32)


def each_fault_once(faults: Mapping[str, Callable[[random.Random], Fault]],
                    inject: Callable[[Fault], None], rng: random.Random) -> Counter[str]:
    """Inject every kind in ``faults`` once, for the first requests, and count them: the
    seed's later draws then add to faults that happened for certain, so a check that they
    happened cannot fail by the luck of the draw."""
    for fault in faults.values():
        inject(fault(rng))
    return Counter(faults.keys())


def rounds(long_run: bool, short: int, long: int) -> Iterator[int]:
    """Round numbers for a chaos loop: ``short`` of them, ``long`` under ``--long``, or
    under ``--long`` with NOTIFIER_SOAK_SECONDS=N as many as fit in N seconds."""
    seconds = float(os.environ.get("NOTIFIER_SOAK_SECONDS", "0")) if long_run else 0.0
    if seconds <= 0:
        yield from range(long if long_run else short)
        return
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        yield i
        i += 1


# -- traffic ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Version:
    """One version of one message, as posted or edited in the emulator."""

    message_id: str
    edited_at: str
    room: str
    kind: str
    born: float
    """``time.monotonic()`` when this version came to exist."""


class Traffic:
    """Posts and edits messages, remembering what every version must produce."""

    def __init__(self, emu: RoomlioEmulator, rooms: Iterable[str], rng: random.Random) -> None:
        self.emu, self.rooms, self.rng = emu, list(rooms), rng
        self.versions: dict[tuple[str, str], Version] = {}
        self.current: dict[str, Version] = {}
        self.deleted: set[str] = set()
        self._serial = 0

    @property
    def live_rooms(self) -> list[str]:
        return [r for r in self.rooms if r not in self.deleted]

    def _kind(self, kind: str | None) -> str:
        return kind or self.rng.choices(list(ROUTES), weights=(5, 2, 3))[0]

    def post(self, room: str | None = None, kind: str | None = None,
             body: str | None = None) -> Version:
        """Post one message (random room and kind unless given)."""
        room = room or self.rng.choice(self.live_rooms)
        kind = self._kind(kind)
        self._serial += 1
        message = self.emu.post(room, body or f"{kind} #{self._serial}")
        return self._record(message, room, kind)

    def edit(self, message_id: str | None = None, kind: str | None = None) -> Version | None:
        """Edit a recent message of a live room (random unless given); None if there is none."""
        if message_id is None:
            recent = [v for v in list(self.current.values())[-30:] if v.room not in self.deleted]
            if not recent:
                return None
            message_id = self.rng.choice(recent).message_id
        old = self.current[message_id]
        kind = self._kind(kind)
        self._serial += 1
        message = self.emu.edit(message_id, f"{kind} #{self._serial} (edited)")
        return self._record(message, old.room, kind)

    def step(self, n: int = 1, edit_share: float = 0.25) -> None:
        """``n`` random actions: mostly posts, some edits."""
        for _ in range(n):
            if self.current and self.rng.random() < edit_share and self.edit() is not None:
                continue
            self.post()

    def delete_room(self, room: str) -> None:
        """Delete a room in the emulator: its undelivered messages vanish with it."""
        self.emu.delete_room(room)
        self.deleted.add(room)

    def _record(self, message: dict[str, Any], room: str, kind: str) -> Version:
        version = Version(message["id"], message["editedAt"], room, kind, time.monotonic())
        self.versions[version.message_id, version.edited_at] = version
        self.current[version.message_id] = version
        return version

    def required(self) -> dict[tuple[str, str, str], Version]:
        """(webhook, message id, editedAt) that must arrive: each live message's latest
        version, once per webhook its kind routes to. An earlier version may have been
        replaced before the notifier could see it, which loses nothing."""
        return {(webhook, v.message_id, v.edited_at): v
                for v in self.current.values() if v.room not in self.deleted
                for webhook in ROUTES[v.kind]}

    def rules_for(self, webhook: str, message_id: str, edited_at: str) -> tuple[str, ...] | None:
        """The rules a delivery of this version to ``webhook`` must list; None if none may
        be sent (the version never existed or matches no rule for that webhook)."""
        version = self.versions.get((message_id, edited_at))
        return None if version is None else ROUTES[version.kind].get(webhook)

    def missing(self, rx: WebhookReceiver) -> set[tuple[str, str, str]]:
        return set(self.required()) - set(_accepted(rx))


def _key(received: Any) -> tuple[str, str, str] | None:
    try:
        message = received.json["data"]["message"]
        return received.path.strip("/"), str(message["id"]), str(message["editedAt"])
    except (TypeError, KeyError):
        return None


def accepted_keys(rx: WebhookReceiver) -> set[tuple[str, str, str]]:
    """Each (webhook, message id, editedAt) the receiver accepted."""
    return set(_accepted(rx))


def last_first_arrival(rx: WebhookReceiver) -> float:
    """``time.monotonic()`` when the last (webhook, version) to arrive first arrived."""
    return max(_accepted(rx).values(), default=float("-inf"))


def _accepted(rx: WebhookReceiver) -> dict[tuple[str, str, str], float]:
    """Each (webhook, version) accepted, with when it first arrived."""
    first: dict[tuple[str, str, str], float] = {}
    for received in rx.received:
        key = _key(received)
        if key is not None:
            first.setdefault(key, received.at)
    return first


# -- figures ---------------------------------------------------------------------------


@dataclass
class Figures:
    """What a chaos run ends with; ``check`` holds it to the promise."""

    name: str
    expected: int
    delivered: int
    """Distinct webhook-ids accepted (2xx)."""
    duplicates: int
    """Accepted requests beyond the first for their webhook-id."""
    repeats: Repeats
    """What may explain a duplicate in this run."""
    max_delay: float
    """Seconds from a required version's birth to its first acceptance."""
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    """Duplicates that none of the run's faults explains."""
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        more = "".join(f", {k} {v}" for k, v in self.extra.items())
        return (f"[{self.name}] expected {self.expected}, delivered {self.delivered}, "
                f"duplicates {self.duplicates}, max delay {self.max_delay:.2f}s, "
                f"missing {len(self.missing)}, unexpected {len(self.unexpected)}{more}")

    def check(self, *, max_delay: float | None = None) -> None:
        """Hold the run to the promise; ``max_delay``: the seconds within which every
        required version must have arrived (a bound well above the measured figures)."""
        print("\n" + self.line())
        assert not self.missing, f"lost events: {self.missing[:10]}"
        assert not self.unexpected, f"events that should not exist: {self.unexpected[:10]}"
        assert not self.conflicts, f"duplicates that differ: {self.conflicts[:10]}"
        assert not self.unexplained, (f"duplicates beyond what {self.repeats.cause} explain: "
                                      f"{self.unexplained[:10]}")
        if max_delay is not None:
            assert self.max_delay <= max_delay, (
                f"an event took {self.max_delay:.1f}s to arrive (bound: {max_delay}s)")


def measure(name: str, traffic: Traffic, rx: WebhookReceiver, *,
            repeats: Repeats = NO_REPEATS, **extra: Any) -> Figures:
    """The figures of a run, from what the receiver accepted; ``repeats`` says which
    duplicates the run's faults explain (by default: none may happen)."""
    required = traffic.required()
    accepted = _accepted(rx)
    unexpected, conflicts = [], []
    bodies: dict[str | None, bytes] = {}
    ids: dict[tuple[str, str, str], str | None] = {}
    for received in rx.received:
        key = _key(received)
        if key is None:
            unexpected.append(f"{received.path}: not an event: {received.body[:80]!r}")
            continue
        rules = traffic.rules_for(*key)
        if rules is None or tuple(received.json["data"]["rules"]) != rules:
            unexpected.append(f"{key} listing {received.json['data']['rules']}")
        if received.verified is not True:
            unexpected.append(f"{key} without a verified signature")
        if bodies.setdefault(received.webhook_id, received.body) != received.body:
            conflicts.append(f"{received.webhook_id}: two bodies")
        if ids.setdefault(key, received.webhook_id) != received.webhook_id:
            conflicts.append(f"{key}: two webhook-ids")
    bad = [a for a in rx.attempts if a.verified is False]
    unexpected += [f"{a.path}: bad signature ({a.error})" for a in bad]
    delays = [accepted[k] - v.born for k, v in required.items() if k in accepted]
    return Figures(
        name, len(required), len(rx.unique_ids()), len(rx.received) - len(rx.unique_ids()),
        repeats, max(delays, default=0.0), sorted(map(str, set(required) - set(accepted))),
        unexpected, conflicts, unexplained(rx, repeats), extra)


# -- running and waiting ----------------------------------------------------------------


@dataclass
class Running:
    """A Service running in this event loop."""

    service: Service
    task: asyncio.Task[None]

    async def until(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, failing at once if the service stops by itself meanwhile."""
        waiter = asyncio.ensure_future(awaitable)
        await asyncio.wait({waiter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            self.task.result()  # raises what stopped it
            raise AssertionError("the service stopped by itself")
        return waiter.result()


@contextlib.asynccontextmanager
async def serve(config: Config, *, store: Store | None = None,
                hooks: ServiceHooks | None = None) -> AsyncIterator[Running]:
    """Run a Service for the body of the block, then stop it and re-raise its failure."""
    service = Service(config, hooks=hooks, store=store)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield Running(service, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def deliveries_complete(run: Running, traffic: Traffic, rx: WebhookReceiver,
                              timeout: float = 60) -> None:
    """Wait until every required event arrived; on timeout, let the figures tell."""
    with contextlib.suppress(TimeoutError):
        await run.until(rx.wait_for(lambda r: not traffic.missing(r), timeout))


class LogWatch(logging.Handler):
    """Collects the notifier's log records; lets a test await one that says something."""

    def __init__(self, logger: str = "notifier") -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._logger = logging.getLogger(logger)
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._level = self._logger.level

    def __enter__(self) -> LogWatch:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._loop.call_soon_threadsafe(self._changed.set)

    def count(self, fragment: str) -> int:
        return sum(fragment in r.getMessage() for r in self.records)

    async def wait_for(self, predicate: Callable[[LogWatch], bool],
                       timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)
