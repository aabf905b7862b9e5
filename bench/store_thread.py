"""The SQLite store's CPU per event, claimed from the outbox or handed off at commit.

    python bench/store_thread.py [--events 20000] [--page 500] [--repeat 5]

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
medians of --repeat runs, the two paths interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifier.events import Delivery, Event
from notifier.store.sqlite import SQLiteStore

CLAIM, DONE = 256, 46


def pages(events: int, size: int, run: int) -> list[list[Delivery]]:
    """``events`` deliveries to "crm", one per message, in pages of ``size``."""
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
    batches = pages(events, size, run)
    spent = dict.fromkeys(("commit", "claim", "completion", "calling thread"), 0.0)
    async with SQLiteStore(path, instance="bench", exclusive=True) as store:
        loop_before = time.thread_time()
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
    return spent


def _spent(spent: dict[str, float], phase: str, since: float, now: float) -> float:
    spent[phase] += now - since
    return now


async def main(args: argparse.Namespace) -> None:
    results: dict[str, list[dict[str, float]]] = {"claim": [], "handoff": []}
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        for run in range(args.repeat):
            for mode in results:  # interleaved, so drift in the machine's load hits both
                path = str(Path(tmp) / f"{mode}-{run}.db")
                results[mode].append(await one_run(path, mode, args.events, args.page, run))
    print(f"{args.events} events in pages of {args.page}, medians of {args.repeat} runs, "
          "CPU µs per event")
    print(f"{'path':8} {'commit':>7} {'claim':>7} {'done':>7} {'store':>7} {'calling':>8}")
    for mode, runs in results.items():
        per = {k: statistics.median(r[k] for r in runs) / args.events * 1e6 for k in runs[0]}
        store = statistics.median(sum(v for k, v in r.items() if k != "calling thread")
                                  for r in runs) / args.events * 1e6
        print(f"{mode:8} {per['commit']:7.1f} {per['claim']:7.1f} {per['completion']:7.1f}"
              f" {store:7.1f} {per['calling thread']:8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--page", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
