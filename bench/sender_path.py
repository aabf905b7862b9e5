"""Event-loop CPU per delivery of the sender's per-delivery path alone.

    python bench/sender_path.py [--deliveries 40000] [--repeat 5] [--baseline-tree DIR]

``bench/sender_cpu.py`` measures the sender whole (claims, decoding, the store's thread);
this isolates what each delivery costs on the loop once it is held: started on its lane
as the sender starts it (``Sender._start``: a task, or since the lane workers a place in
the lane's queue), the retry loop, the breaker's admission and record, the slots, the
rate limiter, the POST (to a transport that answers 204 at once) and the completion (a
write that does nothing), up to its outcome's report. Batches of 500 deliveries; the
figure is the loop thread's CPU per delivery, median of --repeat. ``--baseline-tree DIR``
runs DIR's notifier (PYTHONPATH=DIR) and this tree's in alternation, fresh processes.
(Until the lane workers this script started each delivery's coroutine in its own task
itself: its figures before them are not comparable with these.)
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import config_yaml
from sender_cpu import _deliveries, _NullTransport

from notifier.delivery.completer import Completer
from notifier.delivery.formats import load_config
from notifier.delivery.sender import Sender
from notifier.store.sqlite import SQLiteStore
from notifier.util.aio import run_loop


async def _write_nothing(_ids: Sequence[str]) -> None:
    return None


def _prepare(sender: Any, on_outcome: Any) -> None:
    """Completions written nowhere; outcomes to ``on_outcome``."""
    deliverer = sender._deliverer
    deliverer.completer = Completer(_write_nothing)
    # the listener's attribute: public since the lane workers
    name = "on_outcome" if hasattr(deliverer, "on_outcome") else "_on_outcome"
    setattr(deliverer, name, on_outcome)


async def _once(n: int) -> float:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        path = Path(tmp, "rules.yaml")
        path.write_text(config_yaml("http://127.0.0.1:1", "http://127.0.0.1:2", ["room-0"],
                                    str(Path(tmp, "state.db"))))
        store = SQLiteStore(str(Path(tmp, "state.db")))
        await store.open()
        sender = Sender(load_config(str(path)).webhooks, store, transport=_NullTransport)
        lane, batch = sender._lanes["sink"], _deliveries(500)
        done, left = asyncio.Event(), [0]

        def on_outcome(_outcome: object) -> None:
            left[0] -= 1
            if left[0] == 0:
                done.set()

        async def run_batch() -> None:
            done.clear()
            left[0] = len(batch)
            for delivery in batch:
                sender._start(lane, delivery)
            await done.wait()

        _prepare(sender, on_outcome)
        for _ in range(5):  # warm-up
            await run_batch()
        started = time.thread_time()
        for _ in range(n // len(batch)):
            await run_batch()
        cpu = time.thread_time() - started
        await store.close()
        return cpu / n * 1e6


def _child(tree: str, n: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--raw", "--repeat", "1", "--deliveries",
                          str(n)], env={**os.environ, "PYTHONPATH": tree}, check=True,
                         cwd=tempfile.gettempdir(), capture_output=True, text=True).stdout
    return float(out.split()[-1])


def _compare(baseline: str, n: int, repeat: int) -> None:
    here = str(Path(__file__).resolve().parent.parent)
    pairs = [(_child(baseline, n), _child(here, n)) for _ in range(repeat)]
    for label, runs in ((f"baseline {baseline}", [p[0] for p in pairs]),
                        (f"this tree {here}", [p[1] for p in pairs])):
        print(f"{label}: {statistics.median(runs):.2f} µs loop CPU per delivery (median)")
    print("pairs: " + ", ".join(f"{b:.2f} -> {t:.2f}" for b, t in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=40000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-tree", default=None)
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_tree:
        _compare(args.baseline_tree, args.deliveries, args.repeat)
        return
    runs = [run_loop(_once(args.deliveries)) for _ in range(args.repeat)]
    if args.raw:
        print(statistics.median(runs))
        return
    import notifier
    print(f"{Path(notifier.__file__).parent.parent}: {statistics.median(runs):.2f} µs loop CPU "
          f"per delivery (median; runs {', '.join(f'{r:.2f}' for r in runs)})")


if __name__ == "__main__":
    main()
