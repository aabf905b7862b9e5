"""Event-loop CPU per delivery of the sender's per-delivery path alone.

    python bench/sender_path.py [--deliveries 40000] [--repeat 5]

``bench/sender_cpu.py`` measures the sender whole (claims, decoding, the store's thread);
this isolates what each delivery costs on the loop once it is held: its task, the retry
loop, the breaker's admission and record, the slots, the rate limiter, the POST (to a
transport that answers 204 at once) and the completion (a write that does nothing).
Batches of 500 deliveries run concurrently, as a lane runs them; the figure is the loop
thread's CPU per delivery, median of --repeat. Compare trees by running it with
PYTHONPATH=<tree> in alternation (trees before the sender split, 54d9647, work too).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
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


def _deliver_of(sender: Any) -> Callable[[Any, Any], Coroutine[Any, Any, None]]:
    """The sender's per-delivery coroutine, its completions written nowhere."""
    if hasattr(sender, "_deliverer"):  # since the split of sender.py
        sender._deliverer.completer = Completer(_write_nothing)
        return sender._deliverer.deliver  # type: ignore[no-any-return]
    sender._completer = Completer(_write_nothing)
    return sender._deliver  # type: ignore[no-any-return]


async def _once(n: int) -> float:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        path = Path(tmp, "rules.yaml")
        path.write_text(config_yaml("http://127.0.0.1:1", "http://127.0.0.1:2", ["room-0"],
                                    str(Path(tmp, "state.db"))))
        store = SQLiteStore(str(Path(tmp, "state.db")))
        await store.open()
        sender = Sender(load_config(str(path)).webhooks, store, transport=_NullTransport)
        lane, deliver = sender._lanes["sink"], _deliver_of(sender)
        batch = _deliveries(500)
        for _ in range(5):  # warm-up
            await asyncio.gather(*[asyncio.create_task(deliver(lane, d)) for d in batch])
        started = time.thread_time()
        for _ in range(n // len(batch)):
            await asyncio.gather(*[asyncio.create_task(deliver(lane, d)) for d in batch])
        cpu = time.thread_time() - started
        await store.close()
        return cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=40000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = [run_loop(_once(args.deliveries)) for _ in range(args.repeat)]
    import notifier
    print(f"{Path(notifier.__file__).parent.parent}: {statistics.median(runs):.2f} µs loop CPU "
          f"per delivery (median; runs {', '.join(f'{r:.2f}' for r in runs)})")


if __name__ == "__main__":
    main()
