"""The state file on disk: created private (0600), never opened through a symbolic link.

A state file holds chat messages, cursors and delivery errors. The notifier creates it and
its ``.lock`` file readable and writable by their owner only; SQLite gives the ``-wal``,
``-shm`` and ``-journal`` files it creates the database file's mode, so they are private
too. A symbolic link at any of these paths is refused: in a directory another local user
can write to, it would aim the notifier's writes (the lock file's pid, the WAL) at a file
of that user's choosing.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat

from notifier.errors import StoreError

__all__ = ["COMPANIONS", "PRIVATE", "check_same", "lock", "prepare_files"]

log = logging.getLogger("notifier.store")

#: Mode of every file the notifier creates for its state.
PRIVATE = 0o600
#: The files SQLite keeps beside a database ``path`` (``path + suffix``).
COMPANIONS = ("-wal", "-shm", "-journal")
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _symlink_error(path: str) -> StoreError:
    return StoreError(f"refusing to use {path}: it is a symbolic link; the state file and "
                      "its .lock, -wal and -shm files must be regular files (remove the link, "
                      "or point `state` at the real file)")


def _open(path: str, flags: int) -> int:
    """``os.open`` without following a final symlink, errors as one-line StoreErrors."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, PRIVATE)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise _symlink_error(path) from None
        raise StoreError(f"cannot open {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"refusing to use {path}: it is not a regular file")
    return fd


def _tighten(fd: int, path: str) -> None:
    """Drop group and other permissions from a file an older version created 0644."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o077:
        try:
            os.fchmod(fd, mode & 0o700)
        except OSError as exc:  # not ours: say so, but the notifier can still run
            log.warning("state file %s has mode %o and cannot be made private (%s); "
                        "run: chmod 600 %s", path, mode, exc.strerror, path)
            return
        log.warning("state file %s had mode %o; made it %o (it holds chat messages)",
                    path, mode, mode & 0o700)


def prepare_files(path: str, *, tighten: bool) -> tuple[int, int]:
    """Refuse symlinks at ``path`` and its companions; create ``path`` 0600 if missing.

    ``tighten`` (the runner, holding the lock) also makes existing files private. Only
    then: closing any descriptor of a database file drops this process's SQLite locks on
    it, so the files are opened here only while no connection of ours can hold one.
    Returns the file's identity for ``check_same``.
    """
    for name in (path, *(path + suffix for suffix in COMPANIONS)):
        if os.path.islink(name):
            raise _symlink_error(name)
    try:  # created here, not by SQLite, so that it is never world-readable
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, PRIVATE))
    except FileExistsError:
        if os.path.islink(path):  # appeared since the check above
            raise _symlink_error(path) from None
        if tighten:
            for name in (path, *(path + suffix for suffix in COMPANIONS)):
                if os.path.lexists(name):
                    fd = _open(name, os.O_RDONLY)
                    try:
                        _tighten(fd, name)
                    finally:
                        os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot create state file {path}: {exc.strerror}") from exc
    return _identity(path)


def _identity(path: str) -> tuple[int, int]:
    try:
        found = os.lstat(path)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror}") from exc
    if stat.S_ISLNK(found.st_mode):
        raise _symlink_error(path)
    return found.st_dev, found.st_ino


def check_same(path: str, identity: tuple[int, int]) -> None:
    """Refuse ``path`` if it was replaced (say, by a symlink) while SQLite opened it."""
    if _identity(path) != identity:
        raise StoreError(f"refusing to use {path}: it was replaced while being opened; "
                         "check who else writes to its directory")


def lock(path: str) -> int:
    """Take ``<path>.lock`` for this process, or say who holds it."""
    lock_path = path + ".lock"
    fd = _open(lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        if not isinstance(exc, BlockingIOError):
            raise StoreError(f"cannot lock {lock_path}: {exc.strerror}") from exc
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise StoreError(f"another notifier{pid} is already running with state file {path};"
                         " stop it first, or give this one its own `state` file") from None
    _tighten(fd, lock_path)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd
