"""Instructions per event of the SQLite store's work, and how many of them hold the GIL.

    python bench/store_instructions.py [--tree DIR ...] [--events 4000] [--page 500]

Runs the store thread's work of ``bench/store_thread.py``'s claim path (pages of
``--page`` committed, claimed 256 at a time, completed 46 at a time) synchronously on a
real file, under callgrind, for each ``--tree`` (a checkout whose ``notifier`` is
imported; default: this one), with N and 3N events: (Ir(3N) - Ir(N)) / 2N cancels
start-up, and the same for a run that only builds the pages is subtracted. Counted
apart: the instructions inside ``sqlite3_step`` and ``sqlite3_prepare_v2``, during
which CPython's sqlite3 module lets the GIL go; the rest is the thread's work with the
GIL held (Python, binding, fetching). Instruction counts do
not move with the machine's load, as CPU times on a shared machine do. Needs valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: CPython's sqlite3 module releases the GIL around these (Modules/_sqlite).
UNLOCKED = ("sqlite3_step", "sqlite3_prepare_v2")


def work(path: str, events: int, size: int, store: bool = True) -> None:
    """The claim path's store calls, as the worker thread makes them (``store`` False:
    only the pages built, to be subtracted)."""
    import sqlite3

    from notifier.store.sqlite import outbox
    from notifier.store.sqlite.schema import prepare
    try:  # the connection class of the store's own connections, where there is one
        from notifier.store.sqlite.locking import StateConnection as factory
    except ImportError:
        factory = sqlite3.Connection
    sys.path.insert(0, str(HERE))
    from store_thread import CLAIM, DONE, pages

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           factory=factory)
    prepare(conn, path, 5.0)
    batches = pages(events, size, 0)
    if not store:
        return
    for batch in batches:
        outbox.commit_page(conn, None, batch, [], time.time())
        taken: list[str] = []
        while found := outbox.claim(conn, time.time() + 1, CLAIM, frozenset(), None, "bench"):
            taken += [row[0] for row in found]
        for i in range(0, len(taken), DONE):
            outbox.delivered(conn, taken[i:i + DONE])
    conn.close()


def _count(tree: Path, events: int, size: int, tmp: str, *,
           store: bool = True) -> tuple[int, int]:
    """(all instructions, those inside UNLOCKED) of one child run."""
    out = Path(tmp, f"cg.{events}")
    db = Path(tmp, f"state-{events}.db")
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         sys.executable, str(HERE / "store_instructions.py"), "--child", str(db),
         "--events", str(events), "--page", str(size), *([] if store else ["--pages-only"])],
        env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tempfile.gettempdir(),
        check=True, capture_output=True)
    for name in db.parent.glob(f"{db.name}*"):
        name.unlink()
    annotate = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
        check=True, capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", annotate)[1]  # type: ignore[index]
                .replace(",", ""))
    unlocked = 0
    for line in annotate.splitlines():
        found = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*:(\w+)\b", line)
        if found and found[2] in UNLOCKED:
            unlocked += int(found[1].replace(",", ""))
    return total, unlocked


def main(args: argparse.Namespace) -> None:
    trees = [Path(t).resolve() for t in args.tree] or [HERE.parent]
    print(f"claim path, pages of {args.page}: instructions per event "
          f"((3N - N) / 2N, N = {args.events})")
    print(f"{'tree':40} {'all':>8} {'GIL held':>9} {'unlocked':>9}")
    for tree in trees:
        with tempfile.TemporaryDirectory(dir=HERE) as tmp:
            low = _count(tree, args.events, args.page, tmp)
            high = _count(tree, 3 * args.events, args.page, tmp)
            built = (_count(tree, 3 * args.events, args.page, tmp, store=False)[0]
                     - _count(tree, args.events, args.page, tmp, store=False)[0])
        per = [(high[0] - low[0] - built) / (2 * args.events),
               (high[1] - low[1]) / (2 * args.events)]
        print(f"{tree!s:40} {per[0]:8.0f} {per[0] - per[1]:9.0f} {per[1]:9.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--page", type=int, default=500)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--pages-only", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        work(arguments.child, arguments.events, arguments.page, not arguments.pages_only)
    else:
        main(arguments)
