"""Delivery worker processes: events/s with ``delivery.workers`` 0, 1, 2 (issue 16).

    python bench/workers.py [--workers 0,1,2] [--rooms 10] [--messages 2000] [--repeat 3]
                            [--match 1.0] [--lockstats]

As bench/e2e.py: N rooms × M messages preloaded in the Roomlio emulator, the lean
verifying receiver in its own process, `notifier run` with its SQLite state on disk as a
subprocess; events/s from its first RoomHistory request to the last delivery accepted.
The contenders (one per ``--workers`` value) run interleaved, ``--repeat`` rounds, and
their medians are compared with ``workers: 0`` (the main process POSTs) of the same run.
Reported per contender: events/s, CPU seconds of the runner and of its workers (read
from /proc just before the stop), and CPU µs per delivered event.

``--lockstats`` loads bench/lockwait/sitecustomize.py into every notifier process:
write transactions, how many found the write lock taken (SQLITE_BUSY), the seconds spent
waiting for it, and the seconds spent in COMMIT (the WAL's fsync), per role.
``--before DIR`` runs each contender a second time, right after, on the ``notifier``
package in DIR (an earlier commit): before and after, interleaved in the same run.
``--pyspy DIR`` records every notifier process with py-spy (its figures are not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    API_KEY,
    HERE,
    code_env,
    config_yaml,
    cpu_seconds,
    preload,
    stop,
    write_results,
)
from e2e import _Receiver

from notifier.testing import RoomlioEmulator


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in task.read_text().split()]
    return found


async def _run_once(emu: RoomlioEmulator, rx: _Receiver, config: Path, expected: int,
                    env: dict[str, str], profile: str | None) -> dict[str, float]:
    emu.requests.clear()
    rx.expect("/sink", expected)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier", "run", "--config", str(config), "--log-level",
        "ERROR", stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
        cwd=config.parent)  # not the repository: -m puts the cwd ahead of PYTHONPATH
    spy = None if profile is None else await asyncio.create_subprocess_exec(
        "py-spy", "record", "--pid", str(proc.pid), "--subprocesses", "--format", "raw",
        "--rate", "250", "--output", profile, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        last, duplicates, bad = await asyncio.wait_for(rx.done(), timeout=600)
        runner = cpu_seconds(proc.pid)
        workers = sum(cpu_seconds(c) for c in _children(proc.pid))
    finally:
        await stop(proc)
        if spy is not None:
            await spy.wait()
    if bad:
        raise SystemExit(f"{bad} deliveries with a bad signature")
    return {"events_per_s": expected / (last - emu.requests[0].time), "runner_cpu_s": runner,
            "workers_cpu_s": workers, "duplicates": duplicates}


def _lockstats(folder: str) -> dict[str, dict[str, float]]:
    by_role: dict[str, dict[str, float]] = {}
    for path in Path(folder).glob("*.json"):
        doc = json.loads(path.read_text())
        role = doc.pop("role")
        into = by_role.setdefault(role, {})
        for key, value in doc.items():
            into[key] = into.get(key, 0) + value
        path.unlink()
    return by_role


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rooms = [f"room-{i}" for i in range(args.rooms)]
    matching = int(args.messages * args.match)
    counts = [(n, f"{n}{tag}") for n in args.workers.split(",")
              for tag in ("", " (before)")[:2 if args.before else 1]]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for _, label in counts}
    stats_dir = tempfile.mkdtemp(prefix="lockstats-")
    env = dict(os.environ)
    if args.lockstats:
        env.update(PYTHONPATH=os.pathsep.join(filter(None, [
            str(HERE / "lockwait"), env.get("PYTHONPATH")])), NOTIFIER_LOCKSTATS=stats_dir)
    rx = await _Receiver.start()
    try:
        async with RoomlioEmulator(api_key=API_KEY) as emu:
            preload(emu, rooms, args.messages, matching)
            total = matching * len(rooms)
            for _ in range(args.repeat):
                for n, label in counts:
                    with tempfile.TemporaryDirectory() as tmp:
                        path = Path(tmp, "rules.yaml")
                        path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms,
                                                    str(Path(tmp, "state.db")),
                                                    workers=int(n) if n.isdigit() else n))
                        profile = (None if args.pyspy is None
                                   else str(Path(args.pyspy, f"workers{n}.txt")))
                        result = await _run_once(emu, rx, path, total,
                                                 code_env(args.before, label, env), profile)
                    if args.lockstats:
                        result["locks"] = _lockstats(stats_dir)
                    runs[label].append(result)
                    print(f"workers={label}: {result['events_per_s']:,.0f} events/s",
                          flush=True)
    finally:
        await rx.close()
    return {"rooms": args.rooms, "messages_per_room": args.messages, "match": args.match,
            "repeat": args.repeat, "events": total, "runs": runs}


def _print(report: dict[str, Any]) -> None:
    runs = report["runs"]
    base = statistics.median(r["events_per_s"] for r in next(iter(runs.values())))
    print(f"workers: {report['rooms']} rooms x {report['messages_per_room']} messages, "
          f"{report['match']:.0%} matching, SQLite on disk, median of {report['repeat']}")
    print(f"{'workers':>12} {'events/s':>9} {'runs':>24} {'vs first':>8} {'runner CPU s':>12} "
          f"{'workers CPU s':>13} {'µs/event':>9}")
    for n, rs in runs.items():
        rate = statistics.median(r["events_per_s"] for r in rs)
        runner = statistics.median(r["runner_cpu_s"] for r in rs)
        workers = statistics.median(r["workers_cpu_s"] for r in rs)
        each = ", ".join(f"{r['events_per_s']:,.0f}" for r in rs)
        print(f"{n:>12} {rate:>9,.0f} {each:>24} {rate / base:>8.2f} {runner:>12.2f} "
              f"{workers:>13.2f} {(runner + workers) / report['events'] * 1e6:>9.0f}")
        if "locks" in rs[0]:
            for role in sorted(rs[0]["locks"]):
                med = {k: statistics.median(r["locks"].get(role, {}).get(k, 0) for r in rs)
                       for k in ("transactions", "busy", "wait_s", "commit_s", "write_s")}
                print(f"{'':>8}   {role}: {med['transactions']:,.0f} write transactions, "
                      f"{med['busy']:,.0f} found the lock taken, {med['wait_s']:.2f}s waiting "
                      f"for it, {med['write_s']:.2f}s holding it ({med['commit_s']:.2f}s in "
                      "COMMIT)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--match", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lockstats", action="store_true")
    parser.add_argument("--before", metavar="DIR", help="also run each contender on the "
                        "notifier package in DIR (e.g. `git archive <commit> notifier`)")
    parser.add_argument("--pyspy", metavar="DIR", help="py-spy every notifier process; "
                        "collapsed stacks in DIR/workers<N>.txt (figures then include its cost)")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    _print(report)
    out = write_results("workers" if args.match == 1.0 else
                        f"workers_match{round(args.match * 100)}", report)
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
