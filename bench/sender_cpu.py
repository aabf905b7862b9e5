"""CPU per delivery of the Sender alone: claims, tasks, breaker, limiter, retry policy,
completions, with a null transport (the seam in notifier.delivery.transport).

    python bench/sender_cpu.py [--deliveries 8000] [--repeat 3] [--state /dev/shm]
                               [--baseline-tree DIR]

The deliveries are committed to a fresh SQLite outbox first (not timed); then the Sender
claims, "POSTs" (a transport that answers 204 at once) and records all of them. CPU is
the process's (the store's thread included) from the sender's start to the last outcome,
per delivery, and the event loop's thread's alone; medians over --repeat runs: the
notifier's own cost per delivery beyond the HTTP client. ``--baseline-tree DIR`` compares
two trees in one run: each repeat runs DIR's notifier (PYTHONPATH=DIR), then this
tree's, each in a fresh process, and prints both medians and every pair.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import config_yaml

from notifier.delivery.formats import load_config
from notifier.delivery.sender import Sender
from notifier.events import Delivery, Event
from notifier.store.sqlite import SQLiteStore
from notifier.testing.ids import new_id
from notifier.util.aio import run_loop


class _NullTransport:
    """Answers 204 to every POST without sending anything."""

    def __init__(self, _webhook: object) -> None:
        pass

    def scrub(self, text: str) -> str:
        return text

    async def post(self, _delivery: Delivery) -> int:
        return 204

    async def close(self) -> None:
        return None


def _deliveries(n: int) -> list[Delivery]:
    out = []
    for i in range(n):
        message = {"id": new_id("msg"), "userID": "usr_bvr0ngdnf4q1u52mfj0g", "username": "jane",
                   "roomName": "room-0", "body": f"refund please, order {i}",
                   "createdAt": "2026-11-25T10:00:02Z", "editedAt": "0001-01-01T00:00:00Z"}
        event = Event.from_message("message.created", "room-0", message, ("bench",),
                                   1_795_600_803.0)  # type: ignore[arg-type]
        out.append(Delivery.for_webhook(event, "sink", ("bench",)))
    return out


async def _once(n: int, folder: str | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = Path(tmp, "rules.yaml")
        path.write_text(config_yaml("http://127.0.0.1:1", "http://127.0.0.1:2", ["room-0"],
                                    str(Path(tmp, "state.db"))))
        config = load_config(path)
        store = SQLiteStore(str(Path(tmp, "state.db")))
        await store.open()
        batch = _deliveries(n)
        for i in range(0, n, 500):
            await store.commit_page(None, batch[i:i + 500], [])
        done, count = asyncio.Event(), 0

        def on_outcome(_outcome: object) -> None:
            nonlocal count
            count += 1
            if count == n:
                done.set()

        sender = Sender(config.webhooks, store, on_outcome=on_outcome, transport=_NullTransport)
        stop = asyncio.Event()
        started, loop_started = time.process_time(), time.thread_time()
        task = asyncio.create_task(sender.run(stop))
        await asyncio.wait_for(done.wait(), 300)
        cpu = time.process_time() - started
        loop_cpu = time.thread_time() - loop_started  # this coroutine runs on the loop's thread
        stop.set()
        sender.poke()
        await task
        await sender.shutdown(1)
        await store.close()
        return cpu / n * 1e6, loop_cpu / n * 1e6


def _child(tree: str, args: argparse.Namespace) -> tuple[float, float]:
    """One run of this script in a fresh process on ``tree``'s notifier."""
    out = subprocess.run(
        [sys.executable, __file__, "--raw", "--repeat", "1", "--deliveries",
         str(args.deliveries), "--state", args.state],
        env={**os.environ, "PYTHONPATH": tree}, cwd=args.state, check=True,
        capture_output=True, text=True).stdout.split()
    return float(out[-2]), float(out[-1])


def _compare(args: argparse.Namespace) -> None:
    here = str(Path(__file__).resolve().parent.parent)
    pairs = [(_child(args.baseline_tree, args), _child(here, args))
             for _ in range(args.repeat)]
    for label, runs in (("baseline " + args.baseline_tree, [p[0] for p in pairs]),
                        ("this tree " + here, [p[1] for p in pairs])):
        print(f"{label}: {statistics.median(r[0] for r in runs):.1f} µs CPU per delivery, "
              f"loop thread {statistics.median(r[1] for r in runs):.1f} (medians)")
    print("pairs (total/loop, baseline -> this tree): " + ", ".join(
        f"{b[0]:.1f}/{b[1]:.1f} -> {t[0]:.1f}/{t[1]:.1f}" for b, t in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--state", default="/dev/shm", help="folder of the SQLite file")
    parser.add_argument("--baseline-tree", default=None)
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_tree:
        _compare(args)
        return
    runs = [run_loop(_once(args.deliveries, args.state)) for _ in range(args.repeat)]
    import notifier
    total, loop = [r[0] for r in runs], [r[1] for r in runs]
    if args.raw:
        print(statistics.median(total), statistics.median(loop))
        return
    print(f"{Path(notifier.__file__).parent.parent}: {statistics.median(total):.1f} µs CPU "
          f"per delivery, loop thread {statistics.median(loop):.1f} (medians; runs "
          f"{', '.join(f'{t:.1f}/{lp:.1f}' for t, lp in zip(total, loop, strict=True))})")


if __name__ == "__main__":
    main()
