"""The SQLite store's CPU per event, claimed from the outbox or handed off at commit.

    python bench/store_thread.py [--events 20000] [--page 500] [--repeat 5]
                                 [--baseline-tree DIR] [--contend]

On a real state file (in a temporary directory on disk), pages of ``--page`` deliveries
go through the outbox the way the sender takes them:

* ``claim``: committed unclaimed, claimed 256 at a time (``claim_due``), completed 46 at
  a time (``delivered``): the path before the hand-off, and still the path of ordered,
  grouped and full lanes;
* ``handoff``: committed claimed by this instance (``commit_page(claimed=ids)``), then
  completed 46 at a time: no claim query, no rows decoded.

46 and 256 are the batch sizes one e2e run showed (bench/RESULTS.md). Reported: CPU µs
per event on the store's thread by phase (``time.thread_time`` read there between the
calls) and on the calling thread (the event loop: the claim's rows decoded, the awaits),
medians of --repeat runs, the two paths interleaved, and the wall time per event.

Each run is a child process (this script with ``--child``) importing ``notifier`` from
PYTHONPATH, run from a folder without a notifier package: ``--baseline-tree DIR`` adds the
same two paths with DIR's notifier, interleaved with this tree's. ``--contend`` runs a
thread of pure Python beside the store (a busy event loop's stand-in): a store thread
that lets the GIL go often (once per ``sqlite3_step``) then waits for it shows in the
wall time per event, and "lost" is the spinner's time per event taken by the run (the
GIL held by the store's and the calling thread's Python, and the hand-overs), from the
spinner's iterations against its rate alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notifier.events import Delivery
    from notifier.store.sqlite import SQLiteStore

CLAIM, DONE = 256, 46
HERE = Path(__file__).resolve().parent


def pages(events: int, size: int, run: int) -> list[list[Delivery]]:
    """``events`` deliveries to "crm", one per message, in pages of ``size``."""
    from notifier.events import Delivery, Event
    found = []
    for n in range(events):
        message = {"id": f"msg_{run}_{n:020d}", "body": f"refund please {n}",
                   "userID": "usr_1", "createdAt": "2026-11-25T10:00:02Z",
                   "editedAt": "0001-01-01T00:00:00Z", "roomID": "room_1"}
        event = Event.from_message("message.created", "r1", message, ("refunds",), time.time())
        found.append(Delivery.for_webhook(event, "crm", ("refunds",)))
    return [found[i:i + size] for i in range(0, events, size)]


async def store_cpu(store: SQLiteStore) -> float:
    return await store._run("reading the thread's clock", lambda _c: time.thread_time())


async def one_run(path: str, mode: str, events: int, size: int,
                  run: int) -> dict[str, float]:
    """CPU seconds for ``events`` through ``mode``: the store thread's in each phase
    (commit, claim, completion), and the calling thread's in all."""
    from notifier.store.sqlite import SQLiteStore
    batches = pages(events, size, run)
    spent = dict.fromkeys(("commit", "claim", "completion", "calling thread", "wall"), 0.0)
    async with SQLiteStore(path, instance="bench", exclusive=True) as store:
        loop_before, wall_before = time.thread_time(), time.perf_counter()
        for batch in batches:
            at = await store_cpu(store)
            if mode == "handoff":
                added, _ = await store.commit_page(None, batch, (), claimed={d.id for d in batch})
                taken = [d.id for d in added]
                at = _spent(spent, "commit", at, await store_cpu(store))
            else:
                await store.commit_page(None, batch, ())
                at = _spent(spent, "commit", at, await store_cpu(store))
                taken = []
                while claimed := await store.claim_due(time.time() + 1, CLAIM):
                    taken += [d.id for d in claimed]
                at = _spent(spent, "claim", at, await store_cpu(store))
            for i in range(0, len(taken), DONE):
                await store.delivered(taken[i:i + DONE])
            _spent(spent, "completion", at, await store_cpu(store))
        spent["calling thread"] = time.thread_time() - loop_before
        spent["wall"] = time.perf_counter() - wall_before
    return spent


def _spent(spent: dict[str, float], phase: str, since: float, now: float) -> float:
    spent[phase] += now - since
    return now


def _spin(stop: threading.Event, count: list[int]) -> None:
    """Pure Python until ``stop``: takes the GIL whenever the store's thread lets it go."""
    n = 0
    while not stop.is_set():
        n += 1
    count.append(n)


def _spin_rate() -> float:
    """The spinner's iterations per second with nothing else running."""
    stop, count = threading.Event(), []
    spinner = threading.Thread(target=_spin, args=(stop, count))
    started = time.perf_counter()
    spinner.start()
    time.sleep(0.3)
    stop.set()
    spinner.join()
    return count[0] / (time.perf_counter() - started)


async def child(args: argparse.Namespace) -> None:
    """One run of one path, its CPU seconds by phase printed as JSON."""
    stop, count = threading.Event(), []
    spinner = threading.Thread(target=_spin, args=(stop, count))
    rate = _spin_rate() if args.contend else 0.0
    if args.contend:
        spinner.start()
    try:
        spent = await one_run(args.path, args.child, args.events, args.page, args.run)
    finally:
        stop.set()
    if args.contend:
        spinner.join()
        # what the run took from the spinner: the GIL held elsewhere, and the hand-overs
        spent["spinner lost"] = spent["wall"] - count[0] / rate
    print(json.dumps(spent))


def _one(tree: Path, mode: str, path: str, args: argparse.Namespace, run: int
         ) -> dict[str, float]:
    command = [sys.executable, str(HERE / "store_thread.py"), "--child", mode, "--path", path,
               "--events", str(args.events), "--page", str(args.page), "--run", str(run)]
    if args.contend:
        command.append("--contend")
    # from a folder without a notifier package, so PYTHONPATH decides which tree is measured
    done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(tree)},
                          cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main(args: argparse.Namespace) -> None:
    trees = {"": HERE.parent}
    if args.baseline_tree:
        trees = {"base ": Path(args.baseline_tree).resolve(), **trees}
    results: dict[str, list[dict[str, float]]] = {
        f"{label}{mode}": [] for label in trees for mode in ("claim", "handoff")}
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        for run in range(args.repeat):
            for name in results:  # interleaved, so drift in the machine's load hits all
                label, mode = name.rsplit(" ", 1) if " " in name else ("", name)
                tree = trees[f"{label} " if label else ""]
                path = str(Path(tmp) / f"{name.replace(' ', '-')}-{run}.db")
                results[name].append(_one(tree, mode, path, args, run))
    print(f"{args.events} events in pages of {args.page}, medians of {args.repeat} runs, "
          f"CPU µs per event{', beside a spinning thread' if args.contend else ''}")
    print(f"{'path':13} {'commit':>7} {'claim':>7} {'done':>7} {'store':>7} {'calling':>8}"
          f" {'wall':>7}" + (f" {'lost':>7}" if args.contend else ""))
    for name, runs in results.items():
        per = {k: statistics.median(r[k] for r in runs) / args.events * 1e6 for k in runs[0]}
        store = statistics.median(sum(r[k] for k in ("commit", "claim", "completion"))
                                  for r in runs) / args.events * 1e6
        print(f"{name:13} {per['commit']:7.1f} {per['claim']:7.1f} {per['completion']:7.1f}"
              f" {store:7.1f} {per['calling thread']:8.1f} {per['wall']:7.1f}"
              + (f" {per['spinner lost']:7.1f}" if args.contend else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--page", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-tree", default=None,
                        help="also measure the notifier package of this checkout")
    parser.add_argument("--contend", action="store_true",
                        help="a pure-Python thread competes for the GIL during each run")
    parser.add_argument("--child", choices=("claim", "handoff"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        asyncio.run(child(arguments))
    else:
        main(arguments)
