"""CPU per message of the tailer's pure path on a 1,000-message page, 5% matching.

    PYTHONPATH=TREE python bench/page_cost.py [--rounds 7] [--spread]
    python bench/page_cost.py --instructions [--tree DIR ...] [--pages 20] [--steps read,...]

One emulator page (its JSON as RoomHistory sends it) goes through what the tailer does
with it between the request and the commit: read the answer (``util.json.loads`` and the
client's check for lone surrogates, ``polling.client.decode_answer`` where there is one),
validate (``parse_page``), move the resume point (``advance``), look for messages dated
ahead of the clock (``ahead``), match the messages and build the events and deliveries of
the matching ones (``polling.commit.page_deliveries``). Each step's best of ``--rounds``
(CPU time, ``time.process_time``), in µs per message. Run it with ``PYTHONPATH`` set to
two checkouts, one after the other, to compare them: the numbers come from whichever
``notifier`` package is imported.

``--instructions`` counts instructions per message instead, under callgrind (a figure the
machine's load does not move): each step run for 1 and for 1 + ``--pages`` pages in a
child, (Ir(1 + P) - Ir(1)) / P / 1,000, for each ``--tree`` (default: this checkout).
Needs valgrind. ``--spread`` dates the messages a second apart; without it they share
the second or two in which the emulator was filled, as a busy room's do.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import preload

from notifier.config import Rule
from notifier.events import CREATED
from notifier.polling import client
from notifier.polling.client import parse_page
from notifier.polling.commit import page_deliveries
from notifier.polling.position import advance, ahead
from notifier.rules import compile_rules
from notifier.store import RoomState
from notifier.testing import RoomlioEmulator
from notifier.util.json import loads
from notifier.util.time import format_time

HERE = Path(__file__).resolve().parent
MESSAGES = 1000
RULES = [Rule(name="bench", keywords=("refund",), notify=("sink",))]
STEPS = ("read", "validate", "advance", "ahead", "match + build", "whole path")


def _page(spread: bool = False) -> bytes:
    """The page; ``spread``: each message a second after the one before it (the emulator
    dates a preloaded room's messages within the same second or two)."""
    emu = RoomlioEmulator(api_key="k")
    preload(emu, ["r"], MESSAGES, MESSAGES // 20)
    messages = emu.messages("r")
    if spread:
        start = time.time() - MESSAGES
        messages = [{**m, "createdAt": format_time(float(int(start) + i))}
                    for i, m in enumerate(messages)]
    answer = {"messages": messages, "hasMore": False, "nextCursor": ""}
    return json.dumps(answer, separators=(",", ":")).encode()


def _reader() -> Callable[[bytes], Any]:
    """How the client turns an answer's bytes into its value, in the tree imported."""
    if hasattr(client, "decode_answer"):
        return client.decode_answer  # type: ignore[no-any-return]

    def read(raw: bytes) -> Any:  # before decode_answer: RoomlioClient.call's own lines
        body = loads(raw)
        return client._scrub_surrogates(body) if client._SURROGATE_ESCAPE.search(raw) \
            else body
    return read


def steps(raw: bytes) -> dict[str, Callable[[], Any]]:
    """Each step of the path alone, and the whole path."""
    matcher, routes, names = compile_rules(RULES), {"bench": ("sink",)}, ("r",)
    read = _reader()
    state, body = RoomState("r"), read(raw)
    page = parse_page(body)
    newest = {"newest": page.newest} if "newest" in inspect.signature(ahead).parameters else {}

    def match_and_build() -> list[Any]:
        return page_deliveries(page.messages, CREATED, "r", names, matcher, routes,
                               time.time())

    def whole() -> None:
        nonlocal page
        page = parse_page(read(raw))
        advance(state, page, now=time.time())
        ahead(page.messages, time.time(), **newest)
        match_and_build()

    return {"read": lambda: read(raw), "validate": lambda: parse_page(body),
            "advance": lambda: advance(state, page, now=time.time()),
            "ahead": lambda: ahead(page.messages, time.time(), **newest),
            "match + build": match_and_build, "whole path": whole}


def _times(rounds: int, spread: bool) -> None:
    import notifier
    print(f"notifier from {Path(notifier.__file__).parent.parent}")
    best: dict[str, float] = {}
    todo = steps(_page(spread))
    for _ in range(rounds):
        for name, step in todo.items():
            spent = timeit.timeit(step, number=5, timer=time.process_time) / 5
            best[name] = min(best.get(name, spent), spent)
    for name, spent in best.items():
        print(f"  {name:<14} {spent / MESSAGES * 1e6:6.2f} µs per message")


def _child(step: str, pages: int, spread: bool) -> None:
    """Run ``step`` once, then ``pages`` times more (the collector off, as timeit has it)."""
    run = steps(_page(spread))[step]
    gc.disable()
    for _ in range(1 + pages):
        run()


def _count(tree: Path, step: str, pages: int, spread: bool, tmp: str) -> int:
    out = Path(tmp, "cg.out")
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         str(HERE / "page_cost.py"), "--child", step, "--pages", str(pages),
         *(["--spread"] if spread else [])],
        env={**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}, cwd=tmp, check=True,
        capture_output=True)
    found = re.search(rb"^summary: (\d+)", out.read_bytes(), re.M)
    assert found is not None, f"no summary in {out}"
    return int(found[1])


def _instructions(trees: list[Path], pages: int, names: list[str], spread: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for tree in trees:
            print(f"notifier from {tree}: instructions per message")
            for step in names:
                low, high = (_count(tree, step, n, spread, tmp) for n in (0, pages))
                print(f"  {step:<14} {(high - low) / pages / MESSAGES:10,.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--tree", type=Path, action="append")
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--steps", type=lambda v: v.split(","), default=list(STEPS),
                        help="with --instructions: only these (comma-separated)")
    parser.add_argument("--spread", action="store_true",
                        help="date the messages a second apart (not all in one second)")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.pages, args.spread)
    elif args.instructions:
        _instructions(args.tree or [HERE.parent], args.pages, args.steps, args.spread)
    else:
        _times(args.rounds, args.spread)


if __name__ == "__main__":
    main()
