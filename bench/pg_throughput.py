"""Delivered events/s on PostgreSQL, one instance and three, against SQLite (issue 16).

    python bench/pg_throughput.py [--rooms 10] [--messages 2000] [--repeat 3]
                                  [--instances 1,3] [--no-sync]

As bench/e2e.py: N rooms × M messages preloaded in the Roomlio emulator, the lean verifying
receiver in its own process, every message matching; events/s from the first RoomHistory
request to the last distinct delivery accepted. Contenders, interleaved in each round:
`notifier run` with its SQLite state on disk (the baseline), then 1 and 3 instances of the
same config on one PostgreSQL database (rooms leased, one shared outbox drained by every
instance with ``SKIP LOCKED`` claims). A fresh database per run. PostgreSQL 15 runs from
the system's binaries on this machine, durable like a production server (``fsync``,
``synchronous_commit`` on: SQLite's state syncs every commit too); ``--no-sync`` turns
both off, as the tests do. Reported: medians, the ratio to SQLite of the same run, the
duplicates the receiver saw (at least once: a duplicate is allowed, a loss is not; the
run waits for every distinct delivery), and the CPU seconds of the notifier processes
and of PostgreSQL's. ``--before DIR`` runs every contender a second time, right after,
on the ``notifier`` package found in DIR (a checkout of an earlier commit): before and
after in the same run, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import API_KEY, code_env, config_yaml, cpu_seconds, preload, write_results  # noqa: E402
from e2e import _Receiver  # noqa: E402

from notifier.testing import RoomlioEmulator  # noqa: E402
from tests.pg import PgServer, find_bindir  # noqa: E402


def _postgres_pids(server: PgServer) -> list[int]:
    """The postmaster and its backends (their CPU is the database's share)."""
    master = int(Path(server.data, "postmaster.pid").read_text().split()[0])
    children = []
    for task in Path(f"/proc/{master}/task").glob("*/children"):
        children += [int(p) for p in task.read_text().split()]
    return [master, *children]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend that ended
            total += cpu_seconds(pid)
    return total


async def _run_once(emu: RoomlioEmulator, rx: _Receiver, config: Path, instances: int,
                    expected: int, server: PgServer | None, env: dict[str, str],
                    profile: str | None = None) -> dict[str, float]:
    emu.requests.clear()
    rx.expect("/sink", expected)
    db_before = _cpu(_postgres_pids(server)) if server else 0.0
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier", "run", "--config", str(config), "--log-level",
        "ERROR", stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
        cwd=config.parent)  # not the repository: -m puts the cwd ahead of PYTHONPATH
        for _ in range(instances)]
    spy = None if profile is None else await asyncio.create_subprocess_exec(
        "py-spy", "record", "--pid", str(procs[0].pid), "--format", "raw", "--rate", "250",
        "--output", profile, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        last, duplicates, bad = await asyncio.wait_for(rx.done(), timeout=600)
        notifier_cpu = _cpu([p.pid for p in procs])
        db_cpu = _cpu(_postgres_pids(server)) - db_before if server else 0.0
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            await proc.wait()
        if spy is not None:
            await spy.wait()
    if bad:
        raise SystemExit(f"{bad} deliveries with a bad signature")
    return {"events_per_s": expected / (last - emu.requests[0].time),
            "duplicates": duplicates, "notifier_cpu_s": notifier_cpu, "db_cpu_s": db_cpu}


def _server(no_sync: bool) -> PgServer:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found: install the postgresql package")
    server = PgServer(bindir)
    server.init()
    if not no_sync:  # later lines win: undo the tests' speed-over-durability settings
        with open(os.path.join(server.data, "postgresql.conf"), "a") as conf:
            conf.write("fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n")
    server.start()
    return server


def _profile(folder: str | None, label: str) -> str | None:
    if folder is None:
        return None
    return str(Path(folder, label.replace(" ", "_").replace("(", "").replace(")", "") + ".txt"))


async def run(args: argparse.Namespace, server: PgServer) -> dict[str, Any]:
    rooms = [f"room-{i}" for i in range(args.rooms)]
    contenders = [("sqlite", 1), *((f"postgresql x{n}", int(n))
                                   for n in args.instances.split(","))]
    if args.before:  # the same contenders on the code in DIR, each right after its twin
        contenders = [(f"{label}{tag}", n) for label, n in contenders
                      for tag in ("", " (before)")]
    runs: dict[str, list[dict[str, float]]] = {label: [] for label, _ in contenders}
    rx = await _Receiver.start()
    try:
        async with RoomlioEmulator(api_key=API_KEY) as emu:
            preload(emu, rooms, args.messages)
            total = args.messages * len(rooms)
            for _ in range(args.repeat):
                for label, n in contenders:
                    sqlite = label.startswith("sqlite")
                    with tempfile.TemporaryDirectory() as tmp:
                        state = (str(Path(tmp, "state.db")) if sqlite
                                 else server.create_database())
                        path = Path(tmp, "rules.yaml")
                        path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms, state))
                        result = await _run_once(emu, rx, path, n, total,
                                                 None if sqlite else server,
                                                 code_env(args.before, label),
                                                 _profile(args.pyspy, label))
                    runs[label].append(result)
                    print(f"{label}: {result['events_per_s']:,.0f} events/s", flush=True)
    finally:
        await rx.close()
    return {"rooms": args.rooms, "messages_per_room": args.messages, "repeat": args.repeat,
            "durable": not args.no_sync, "events": total, "runs": runs}


def _print(report: dict[str, Any]) -> None:
    runs = report["runs"]
    base = statistics.median(r["events_per_s"] for r in runs["sqlite"])
    print(f"PostgreSQL throughput: {report['rooms']} rooms x {report['messages_per_room']} "
          f"messages, all matching, median of {report['repeat']}, PostgreSQL "
          f"{'durable (fsync on)' if report['durable'] else 'fsync off'}")
    print(f"{'contender':<16} {'events/s':>9} {'runs':>24} {'vs sqlite':>9} {'dups':>5} "
          f"{'notifier µs/ev':>14} {'db µs/ev':>9}")
    for label, rs in runs.items():
        rate = statistics.median(r["events_per_s"] for r in rs)
        each = ", ".join(f"{r['events_per_s']:,.0f}" for r in rs)
        dups = statistics.median(r["duplicates"] for r in rs)
        cpu = statistics.median(r["notifier_cpu_s"] for r in rs) / report["events"] * 1e6
        db = statistics.median(r["db_cpu_s"] for r in rs) / report["events"] * 1e6
        print(f"{label:<16} {rate:>9,.0f} {each:>24} {rate / base:>9.2f} {dups:>5.0f} "
              f"{cpu:>14.0f} {db:>9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--instances", default="1,3")
    parser.add_argument("--no-sync", action="store_true")
    parser.add_argument("--pyspy", metavar="DIR", help="py-spy the first instance of each "
                        "contender; collapsed stacks in DIR (its figures are then not comparable)")
    parser.add_argument("--before", metavar="DIR", help="also run each contender on the "
                        "notifier package in DIR (e.g. `git archive <commit> notifier`)")
    args = parser.parse_args()
    server = _server(args.no_sync)
    try:
        report = asyncio.run(run(args, server))
    finally:
        server.destroy()
    _print(report)
    out = write_results("pg_throughput", report)
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
