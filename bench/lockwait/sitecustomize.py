"""Lock-wait probe for bench/workers.py --lockstats: loaded by every notifier process.

Put on PYTHONPATH (with NOTIFIER_LOCKSTATS=<folder>), this wraps ``sqlite3.connect`` so that
each connection times its write transactions. A ``BEGIN IMMEDIATE`` is first tried without
waiting: when it fails with SQLITE_BUSY (another process holds the write lock) that is one
counted busy wait, timed until a BEGIN (the caller's own, waiting as it was told) works.
``COMMIT`` is timed too (with ``synchronous = FULL`` it is the fsync of the WAL). At exit
each process writes its counts as JSON to ``<folder>/<pid>.json``. Not part of the
notifier: a measuring tool only.
"""

from __future__ import annotations

import atexit
import json
import os
import sqlite3
import sys
import time
from typing import Any

_FOLDER = os.environ.get("NOTIFIER_LOCKSTATS")
_STATS = {"transactions": 0, "busy": 0, "wait_s": 0.0, "commit_s": 0.0, "commits": 0,
          "write_s": 0.0}


class _Timed(sqlite3.Connection):
    _began = 0.0
    _timeout_ms = 5000
    _waiting_since: float | None = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if sql.startswith("PRAGMA busy_timeout ="):
            self._timeout_ms = int(sql.split("=")[1])
        if sql == "BEGIN IMMEDIATE":
            return self._begin()
        if sql == "COMMIT":
            started = time.perf_counter()
            try:
                return super().execute(sql)
            finally:
                now = time.perf_counter()
                _STATS["commit_s"] += now - started
                _STATS["write_s"] += now - self._began
                _STATS["commits"] += 1
        return super().execute(sql, *args)

    def _begin(self) -> sqlite3.Cursor:
        # A wait may span several BEGINs (a caller that polls): it ends at the one that works.
        first = self._waiting_since is None
        if first:
            self._waiting_since = time.perf_counter()
            super().execute("PRAGMA busy_timeout = 0")
            try:
                return self._began_now(super().execute("BEGIN IMMEDIATE"))
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    self._waiting_since = None
                    raise
                _STATS["busy"] += 1
            finally:
                super().execute(f"PRAGMA busy_timeout = {self._timeout_ms}")
        return self._began_now(super().execute("BEGIN IMMEDIATE"))  # the caller's own wait

    def _began_now(self, cursor: sqlite3.Cursor) -> sqlite3.Cursor:
        self._began = time.perf_counter()
        _STATS["transactions"] += 1
        _STATS["wait_s"] += self._began - (self._waiting_since or self._began)
        self._waiting_since = None
        return cursor


def _write() -> None:
    role = "worker" if "notifier.runtime.worker" in " ".join(sys.orig_argv) else "runner"
    with open(os.path.join(_FOLDER or ".", f"{os.getpid()}.json"), "w") as f:
        json.dump({"role": role, **_STATS}, f)


if _FOLDER:
    _connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", _Timed)
        return _connect(*args, **kwargs)

    sqlite3.connect = connect  # type: ignore[assignment]
    atexit.register(_write)
