"""A real PostgreSQL server for the tests, from the system's binaries, in a temporary folder.

``PgServer`` runs ``initdb`` and ``pg_ctl`` (as the ``postgres`` user when the tests run
as root, since initdb refuses root) on a free port of 127.0.0.1 with its socket in the
temporary folder, and tears everything down afterwards. Without the binaries the
PostgreSQL tests skip locally (with a loud summary) and FAIL under CI (``CI=true``): see
tests/realparts.py; ``scripts/test`` installs them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest

from tests import realparts

__all__ = ["PgServer", "find_bindir", "own_pg_server", "pg_server", "pg_url", "started_server"]

SUPERUSER = "postgres"
PASSWORD = "pg-secret-" + "p" * 8


def find_bindir() -> str | None:
    """The folder holding initdb and pg_ctl, or None."""
    candidates = []
    if (pg_config := shutil.which("pg_config")) is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if (pg_ctl := shutil.which("pg_ctl")) is not None:
        candidates.append(os.path.dirname(os.path.realpath(pg_ctl)))
    for folder in candidates:
        if all(os.access(os.path.join(folder, b), os.X_OK) for b in ("initdb", "pg_ctl")):
            return folder
    return None


def _runuser() -> str:
    """runuser lives in /usr/sbin, which a non-login root shell's PATH may lack."""
    return (shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
            or "runuser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in a temporary folder; start, stop, restart, destroy."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="notifier-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = _free_port()
        self._as_user = os.geteuid() == 0
        if self._as_user:
            shutil.chown(self.root, SUPERUSER, SUPERUSER)

    def _run(self, *args: str) -> None:
        command = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self._as_user:
            command = [_runuser(), "-u", SUPERUSER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        pwfile = os.path.join(self.root, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD)
        if self._as_user:
            shutil.chown(pwfile, SUPERUSER, SUPERUSER)
        self._run("initdb", "-D", self.data, "-U", SUPERUSER, "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C")
        # Speed over durability: the tests restart the server cleanly, never crash it.
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                       "synchronous_commit = off\nfull_page_writes = off\n"
                       "max_connections = 200\n")

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"), "-w",
                  "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        done = subprocess.run(
            [os.path.join(self.bindir, "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", SUPERUSER, name], env={**os.environ, "PGPASSWORD": PASSWORD},
            capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"createdb failed: {done.stderr}")
        return self.url(name)


def started_server() -> PgServer:
    """A running server, or a skip (a failure under CI) when the binaries are missing."""
    bindir = find_bindir()
    realparts.require("postgresql", bindir is not None)
    assert bindir is not None
    server = PgServer(bindir)
    try:
        server.init()
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole session."""
    server = started_server()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def own_pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of this test's own, to stop and start without disturbing the
    other tests' databases."""
    server = started_server()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return pg_server.create_database()
