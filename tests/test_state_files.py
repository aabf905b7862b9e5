"""The state file against local attackers: private modes, and no writes through a symlink."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from notifier.errors import StoreError
from notifier.events import CREATED, Delivery, Event
from notifier.store import RoomState
from notifier.store.sqlite import SQLiteStore
from tests.conftest import TEST_ENV, config_text, notifier_command

VICTIM = "precious contents\n"


def _mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _delivery(n: int) -> Delivery:
    event = Event(id=f"evt_{n}", kind=CREATED, room="r1",
                  message={"id": f"m{n}", "text": "refund"}, rules=("r",), detected_at=1.0)
    return Delivery(id=f"msg_{n}", event=event, webhook="crm", rules=("r",))


@pytest.fixture
def open_umask():
    """A umask that lets everyone read new files (0022 is the usual; 0 the worst)."""
    old = os.umask(0)
    yield
    os.umask(old)


async def test_state_lock_wal_and_shm_files_are_created_private(tmp_path, open_umask):
    """With umask 0, the state file, its lock, -wal and -shm are still created 0600."""
    path = str(tmp_path / "state.db")
    async with SQLiteStore(path, exclusive=True) as store:
        await store.commit(RoomState("r1", "c1", "m1", None), [_delivery(1)])
        for name in (path, path + ".lock", path + "-wal", path + "-shm"):
            assert _mode(name) == 0o600, f"{name} is {_mode(name):o}"


async def test_an_old_world_readable_state_file_is_made_private(tmp_path):
    """A state file an older version left 0644 is made 0600 by the runner."""
    path = str(tmp_path / "state.db")
    async with SQLiteStore(path, exclusive=True):
        pass
    for name in (path, path + ".lock"):
        os.chmod(name, 0o644)
    async with SQLiteStore(path, exclusive=True) as store:
        assert await store.rooms() == []
        assert _mode(path) == 0o600 and _mode(path + ".lock") == 0o600


@pytest.mark.parametrize("suffix", ["", ".lock", "-wal", "-shm"])
async def test_a_symlink_at_a_state_path_is_refused_and_its_target_untouched(tmp_path, suffix):
    """A symlink to a victim at the state, lock, -wal or -shm path: refused, victim intact."""
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM)
    path = str(tmp_path / "state.db")
    os.symlink(victim, path + suffix)
    store = SQLiteStore(path, exclusive=True)
    with pytest.raises(StoreError, match=r"refusing to use .*state\.db" + suffix.replace(
            ".", r"\.") + ": it is a symbolic link"):
        await store.open()
    assert victim.read_text() == VICTIM


async def test_notifier_run_refuses_a_symlinked_lock_file(tmp_path, emulator, receiver):
    """`notifier run` with state.db.lock -> victim: exit 1, names the path, victim unchanged."""
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM)
    os.symlink(victim, tmp_path / "state.db.lock")
    config = tmp_path / "rules.yaml"
    config.write_text(config_text(emulator.url, receiver.url, rooms=["r1"]))
    proc = await asyncio.create_subprocess_exec(
        *notifier_command("run", "--config", str(config)), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **TEST_ENV})
    try:  # on a notifier that follows the link, it runs: stop it once the victim changed
        async with asyncio.timeout(30):
            while proc.returncode is None and victim.read_text() == VICTIM:
                await asyncio.wait([asyncio.ensure_future(proc.wait())], timeout=0.1)
    finally:
        if proc.returncode is None:
            proc.kill()
    _, err = await proc.communicate()
    stderr = err.decode()
    assert victim.read_text() == VICTIM
    assert proc.returncode == 1, stderr
    assert f"refusing to use {tmp_path / 'state.db.lock'}: it is a symbolic link" in stderr
    assert "Traceback" not in stderr
    assert victim.read_text() == VICTIM
    assert not (tmp_path / "state.db").exists()


async def test_a_state_file_swapped_for_a_symlink_while_opening_is_refused(
        tmp_path, monkeypatch):
    """The race: the file becomes a symlink after the checks, as SQLite opens it: refused
    before anything is written, the victim left empty."""
    import sqlite3

    from notifier.store import sqlite as module

    victim = tmp_path / "victim.db"
    victim.write_text("")  # an empty file: SQLite would write a schema into it
    path = str(tmp_path / "state.db")
    real_connect = sqlite3.connect

    def swap_then_connect(*args, **kwargs):  # the attacker wins the race
        os.replace(path, path + ".moved")
        os.symlink(victim, path)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(module.sqlite3, "connect", swap_then_connect)
    store = SQLiteStore(path, exclusive=True)
    with pytest.raises(StoreError, match=r"state\.db: it is a symbolic link"):
        await store.open()
    assert victim.stat().st_size == 0


async def test_an_in_memory_state_creates_no_file(tmp_path, monkeypatch):
    """`state: ':memory:'` is SQLite's in-memory database: no file named ':memory:' (nor
    its lock) may appear in the working directory."""
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore(":memory:", exclusive=True)
    await store.open()
    try:
        await store.commit(RoomState(room="r1", cursor="c1"), [])
        assert (await store.load_room("r1")) is not None
    finally:
        await store.close()
    assert sorted(os.listdir(tmp_path)) == []
