"""CPU per delivered event under a steady stream the notifier keeps up with.

    python bench/steady.py [--rooms 10] [--rate 1500] [--seconds 8] [--repeat 3]
                           [--baseline-tree DIR]

``bench/e2e.py`` drains a preloaded backlog: the tailers commit pages far faster than
the webhook takes them, so most deliveries wait in the outbox for a claim. Live traffic
is the other case: each poll brings a few messages, the sender keeps up, and (since the
hand-off of issue 16) their deliveries go from the page's commit straight to the sender.
This runs `notifier run` (SQLite state on disk, the e2e config, polling every 100 ms)
against the emulator, posts ``--rate`` matching messages per second spread over the rooms
for ``--seconds`` after a warm-up, and reads the notifier's CPU (main thread, other
threads, from /proc) from the first message of the stream to the last delivery the
receiver (bench/fast_receiver.py) accepted. With --baseline-tree the same runs from
another checkout, interleaved; medians of --repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, config_yaml, stop
from e2e import _Receiver, _tree_cpu

from notifier.testing import RoomlioEmulator


async def _stream(emu: RoomlioEmulator, rooms: list[str], count: int, rate: float,
                  start: int) -> None:
    """Post ``count`` matching messages, ``rate`` a second, round the rooms."""
    began, posted = time.monotonic(), 0
    while posted < count:
        due = min(count, int((time.monotonic() - began) * rate) + 1)
        for n in range(posted, due):
            emu.post(rooms[n % len(rooms)], f"refund please, order {start + n}")
        posted = due
        await asyncio.sleep(0.005)


async def one_run(emu: RoomlioEmulator, rx: _Receiver, rooms: list[str],
                  args: argparse.Namespace, tree: str | None) -> tuple[float, float]:
    """CPU µs per event (main thread, the rest) of one notifier run on the stream."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "rules.yaml")
        path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms,
                                    str(Path(tmp, "state.db")), poll_interval="100ms"))
        env = None if tree is None else {**os.environ, "PYTHONPATH": tree}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", "run", "--config", str(path), "--log-level",
            "ERROR", stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env=env, cwd=tempfile.gettempdir())
        try:
            while len(emu.requests) < 2 * len(rooms):  # every room polled: start-up is over
                await asyncio.sleep(0.01)
            warmup, posted = int(args.rate * args.warmup), int(args.rate * args.seconds)
            rx.expect("/sink", warmup)
            await _stream(emu, rooms, warmup, args.rate, 0)
            await asyncio.wait_for(rx.done(), 120)
            main0, rest0 = _tree_cpu(proc.pid)
            rx.expect("/sink", posted)
            await _stream(emu, rooms, posted, args.rate, warmup)
            await asyncio.wait_for(rx.done(), 120)
            main1, rest1 = _tree_cpu(proc.pid)
        finally:
            await stop(proc)
    return (main1 - main0) * 1e6 / posted, (rest1 - rest0) * 1e6 / posted


async def run(args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    contenders = {"notifier (disk)": None}
    if args.baseline_tree:
        contenders = {"baseline (disk)": args.baseline_tree, **contenders}
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in contenders}
    rx = await _Receiver.start()
    try:
        for _ in range(args.repeat):
            for label, tree in contenders.items():
                async with RoomlioEmulator(api_key=API_KEY) as emu:
                    rooms = [f"room-{i}" for i in range(args.rooms)]
                    for room in rooms:
                        emu.add_room(key=room)
                    results[label].append(await one_run(emu, rx, rooms, args, tree))
    finally:
        await rx.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1500)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-tree", default=None)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(f"steady: {args.rooms} rooms, {args.rate:,.0f} matching msg/s for {args.seconds}s,"
          f" median of {args.repeat}")
    print(f"{'contender':<18} {'CPU µs/event (main + other threads)':>36}  runs (total)")
    for label, runs in results.items():
        main_us = statistics.median(m for m, _ in runs)
        rest_us = statistics.median(r for _, r in runs)
        total = statistics.median(m + r for m, r in runs)
        each = ", ".join(f"{m + r:.0f}" for m, r in runs)
        print(f"{label:<18} {f'{total:.0f} ({main_us:.0f} + {rest_us:.0f})':>36}  {each}")


if __name__ == "__main__":
    main()
