"""Hot reload: a changed config file or SIGHUP swaps rules, rooms and webhooks safely."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import Counter
from pathlib import Path

from notifier.delivery.formats import load_config
from notifier.runtime.reload import ConfigWatcher, plan_reload
from notifier.runtime.service import Service, ServiceHooks
from notifier.testing import WebhookReceiver
from tests.conftest import SECRET, TEST_ENV, Outcomes, config_text, notifier_command

CATCH_ALL = {"name": "all", "notify": ["crm"]}


class Reloads:
    """Records reload results; awaitable."""

    def __init__(self) -> None:
        self.results: list[bool] = []
        self.changed = asyncio.Event()

    def __call__(self, ok: bool) -> None:
        self.results.append(ok)
        self.changed.set()

    async def next(self, timeout: float = 10) -> bool:
        count = len(self.results)
        async with asyncio.timeout(timeout):
            while len(self.results) == count:
                self.changed.clear()
                await self.changed.wait()
        return self.results[-1]


def write(path: Path, emulator, receiver, **kwargs) -> None:
    text = config_text(emulator.url, receiver.url, **kwargs)
    path.write_text(text)


@contextlib.asynccontextmanager
async def service_for(path: Path, outcomes: Outcomes, reloads: Reloads):
    os.environ.update(TEST_ENV)  # a reload reads the environment, like `notifier run`
    service = Service(load_config(str(path)),
                      hooks=ServiceHooks(on_outcome=outcomes, on_reload=reloads))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def message_ids(receiver: WebhookReceiver, path: str) -> Counter[str]:
    return Counter(r.json["data"]["message"]["id"] for r in receiver.received if r.path == path)


def test_plan_applies_rules_rooms_and_webhooks_and_keeps_restart_only_sections(tmp_path):
    """Rooms added/removed are listed; roomlio changes wait for a restart."""
    old_text = config_text("http://127.0.0.1:1/rpc", "http://127.0.0.1:2", rooms=["a", "b"])
    new_text = config_text("http://127.0.0.1:1/rpc", "http://127.0.0.1:2", rooms=["b", "c"],
                           roomlio={"poll_interval": "7s"}, rules=[CATCH_ALL])
    (tmp_path / "old.yaml").write_text(old_text)
    (tmp_path / "new.yaml").write_text(new_text)
    old = load_config(str(tmp_path / "old.yaml"), env=TEST_ENV)
    new = load_config(str(tmp_path / "new.yaml"), env=TEST_ENV)
    plan = plan_reload(old, new)
    assert [room.name for room in plan.added] == ["c"]
    assert plan.removed == ("a",)
    assert plan.needs_restart == ("roomlio",)
    assert plan.active.config.roomlio == old.roomlio
    assert plan.active.config.rules == new.rules
    assert plan.active.matcher.rule_names == ("all",)


async def test_reload_under_a_stream_loses_and_doubles_nothing(tmp_path, emulator):
    """Rules, rooms and webhook URL change mid-stream; every message arrives exactly once."""
    async with WebhookReceiver({"/crm": SECRET, "/crm2": SECRET, "/mod": SECRET}) as receiver:
        emulator.add_room(key="r1")
        emulator.add_room(key="r2")
        path = tmp_path / "rules.yaml"
        write(path, emulator, receiver, rooms=["r1"], rules=[CATCH_ALL])
        outcomes, reloads = Outcomes(), Reloads()
        posted: list[str] = []
        async with service_for(path, outcomes, reloads):
            swapped = asyncio.Event()

            async def stream() -> None:
                for i in range(120):
                    room = "r2" if swapped.is_set() and i % 2 else "r1"
                    posted.append(emulator.post(room, f"urgent note {i}")["id"])
                    await asyncio.sleep(0.01)

            streaming = asyncio.create_task(stream())
            await outcomes.wait_for(lambda o: len(o.items) >= 10)
            write(path, emulator, receiver, rooms=["r1", "r2"],
                  webhooks={"crm": {"url": f"{receiver.url}/crm2", "secret": "${TEST_SECRET}"}},
                  rules=[CATCH_ALL, {"name": "urgent", "keywords": ["urgent"],
                                     "notify": ["mod"]}])
            assert await reloads.next() is True
            swapped.set()
            after_swap = len(posted)
            await streaming
            await receiver.wait_for(lambda r: sum(
                (message_ids(r, "/crm") + message_ids(r, "/crm2")).values()) >= len(posted),
                timeout=20)
        crm = message_ids(receiver, "/crm") + message_ids(receiver, "/crm2")
        assert set(crm) == set(posted) and max(crm.values()) == 1, "lost or doubled"
        assert receiver.duplicates() == {}
        late = posted[after_swap + 5:]
        assert not set(late) & set(message_ids(receiver, "/crm")), "old URL used after reload"
        assert set(late) <= set(message_ids(receiver, "/mod")), "new rule not applied"
        from_r2 = {m["id"] for m in emulator.messages("r2")}
        assert from_r2 and from_r2 <= set(crm), "added room not tailed"
        assert all(r.verified for r in receiver.received)


async def test_invalid_reload_keeps_the_running_config_and_logs_why(
        tmp_path, emulator, receiver, caplog):
    """A broken file is refused as a whole; the old rules keep matching."""
    emulator.add_room(key="r1")
    path = tmp_path / "rules.yaml"
    write(path, emulator, receiver, rooms=["r1"])
    outcomes, reloads = Outcomes(), Reloads()
    async with service_for(path, outcomes, reloads) as service:
        good = path.read_text()
        path.write_text(good.replace("notify:\n  - crm", "notify:\n  - crmm", 1))
        with caplog.at_level(logging.ERROR, logger="notifier.reload"):
            service.request_reload()
            assert await reloads.next() is False
        assert "unknown webhook 'crmm'" in caplog.text
        assert "running config stays in force" in caplog.text
        emulator.post("r1", "refund please")
        await outcomes.wait_for(lambda o: len(o.items) >= 1)
        assert outcomes.items[0].delivery.event.rules == ("refunds",)


async def test_removed_room_stops_and_resumes_from_its_cursor_when_added_back(
        tmp_path, emulator, receiver):
    """Removing a room stops its tail; adding it back resumes without repeats."""
    emulator.add_room(key="r1")
    emulator.add_room(key="r2")
    path = tmp_path / "rules.yaml"
    write(path, emulator, receiver, rooms=["r1", "r2"], rules=[CATCH_ALL])
    outcomes, reloads = Outcomes(), Reloads()
    async with service_for(path, outcomes, reloads) as service:
        emulator.post("r2", "first")
        await outcomes.wait_for(lambda o: len(o.items) == 1)
        write(path, emulator, receiver, rooms=["r1"], rules=[CATCH_ALL])
        service.request_reload()
        assert await reloads.next() is True
        assert "r2" not in service.tailers
        emulator.post("r2", "while removed")
        emulator.post("r1", "marker")
        await outcomes.wait_for(lambda o: len(o.items) == 2)
        assert outcomes.items[1].delivery.event.message["body"] == "marker"
        write(path, emulator, receiver, rooms=["r1", "r2"], rules=[CATCH_ALL])
        service.request_reload()
        assert await reloads.next() is True
        await outcomes.wait_for(lambda o: len(o.items) == 3)
    bodies = [o.delivery.event.message["body"] for o in outcomes.items]
    assert bodies == ["first", "marker", "while removed"]


async def test_sighup_reloads_a_running_notifier(tmp_path, emulator, receiver):
    """`notifier run` re-reads its config on SIGHUP and logs the result."""
    emulator.add_room(key="r1")
    path = tmp_path / "rules.yaml"
    write(path, emulator, receiver, rooms=["r1"])
    proc = await asyncio.create_subprocess_exec(
        *notifier_command("run", "--config", str(path)), stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **TEST_ENV})
    assert proc.stderr is not None
    try:
        await emulator.wait_requests(1, timeout=20)
        proc.send_signal(signal.SIGHUP)  # the file is unchanged: only the signal reloads
        async with asyncio.timeout(20):
            while b"config reloaded: 2 rule(s)" not in (line := await proc.stderr.readline()):
                assert line, "notifier exited"
        emulator.post("r1", "refund now")
        await receiver.wait_count(1)
        assert receiver.received[0].json["data"]["rules"] == ["refunds"]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)


async def test_a_delivery_already_retrying_uses_the_new_webhook_url_on_its_next_attempt(
        tmp_path, emulator):
    """A webhook change applies from the next attempt, even mid-retry."""
    async with WebhookReceiver({"/crm": SECRET, "/crm2": SECRET, "/mod": SECRET}) as receiver:
        receiver.set_default_status("/crm", 503)
        emulator.add_room(key="r1")
        path = tmp_path / "rules.yaml"
        write(path, emulator, receiver, rooms=["r1"], rules=[CATCH_ALL],
              delivery={"max_attempts": 50})
        outcomes, reloads = Outcomes(), Reloads()
        async with service_for(path, outcomes, reloads) as service:
            emulator.post("r1", "hello")
            await receiver.wait_for(lambda r: len(r.attempts) >= 2)
            write(path, emulator, receiver, rooms=["r1"], rules=[CATCH_ALL],
                  delivery={"max_attempts": 50},
                  webhooks={"crm": {"url": f"{receiver.url}/crm2", "secret": "${TEST_SECRET}"}})
            service.request_reload()
            assert await reloads.next() is True
            await outcomes.wait_for(lambda o: len(o.items) == 1)
        assert outcomes.items[0].ok and outcomes.items[0].attempts >= 3
        assert [r.path for r in receiver.received] == ["/crm2"]


async def test_watcher_reloads_when_the_content_changes_not_when_the_file_is_touched(tmp_path):
    """A touch (new mtime, same bytes) is ignored; new content or trigger() reloads."""
    path = tmp_path / "rules.yaml"
    path.write_text("a: 1\n")
    calls: list[str] = []
    called = asyncio.Event()

    async def reload() -> None:
        calls.append(path.read_text())
        called.set()

    watcher = ConfigWatcher(str(path), reload, interval=0.01)
    checks = _count_checks(watcher)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        # two whole checks of the file after the touch (a check runs at once, without
        # yielding): the watcher has seen the new mtime and a misfire would have happened
        await checks.wait_for(checks.count + 2)
        assert calls == []
        path.write_text("a: 2\n")
        await asyncio.wait_for(called.wait(), 5)
        assert calls == ["a: 2\n"]
        called.clear()
        watcher.trigger()
        await asyncio.wait_for(called.wait(), 5)
        assert calls == ["a: 2\n", "a: 2\n"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


class _Checks:
    """How many times a watcher has looked at its file; awaitable."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def add(self) -> None:
        self.count += 1
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


def _count_checks(watcher: ConfigWatcher) -> _Checks:
    """Observe (not replace) the watcher's look at its file: there is no public event for a
    look that found nothing, and a negative needs proof that the look happened."""
    checks = _Checks()
    look = watcher._changed

    def counted() -> bool:
        try:
            return look()
        finally:
            checks.add()

    watcher._changed = counted  # type: ignore[method-assign]
    return checks
