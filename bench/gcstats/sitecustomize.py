"""Garbage-collector probe for bench/e2e.py --gc-stats: loaded by every contender's process.

Put on PYTHONPATH (with NOTIFIER_GCSTATS=<folder>), this times each of the cyclic
collector's runs by generation (``gc.callbacks``). At exit each process writes its counts
as JSON to ``<folder>/<pid>.json``: collections, seconds spent in them, objects found to
be garbage, by generation; its peak RSS; its command line; the collector's threshold at
its last run. Start-up (imports, reading the config) is counted too. A SIGTERM that
arrives before the process installs its own handler (bench/bare.py has none) writes
them too, then exits with 143. Not part of the notifier: a measuring tool.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import signal
import sys
import time
from typing import Any

_FOLDER = os.environ.get("NOTIFIER_GCSTATS")
_STATS = {g: {"collections": 0, "seconds": 0.0, "collected": 0} for g in range(3)}
_started = [0.0]
_threshold: list[tuple[int, int, int]] = []


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        _threshold[:] = [gc.get_threshold()]
        return
    stats = _STATS[info["generation"]]
    stats["collections"] += 1
    stats["seconds"] += time.perf_counter() - _started[0]
    stats["collected"] += info["collected"]


def _peak_rss_kb() -> int:
    """The process's own high-water mark (VmHWM). Not getrusage's ru_maxrss: Linux carries
    that over from the parent through fork and exec, so a child of bench/e2e.py (whose
    emulator holds every message) read the emulator's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _write() -> None:
    assert _FOLDER is not None
    with open(os.path.join(_FOLDER, f"{os.getpid()}.json"), "w") as out:
        json.dump({"argv": sys.argv, "threshold": _threshold[0] if _threshold else None,
                   "generations": _STATS,
                   "peak_rss_kb": _peak_rss_kb()}, out)


def _terminated(signum: int, _frame: object) -> None:
    _write()
    os._exit(128 + signum)


if _FOLDER:
    gc.callbacks.append(_timed)
    atexit.register(_write)
    signal.signal(signal.SIGTERM, _terminated)
