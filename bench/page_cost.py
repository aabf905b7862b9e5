"""CPU per message of the tailer's pure path on a 1,000-message page, 5% matching.

    PYTHONPATH=TREE python bench/page_cost.py [--rounds 7]

One emulator page (its JSON as RoomHistory sends it) goes through what the tailer does
with it between the request and the commit: decode (``util.json.loads``), validate
(``parse_page``), move the resume point (``advance``), look for messages dated ahead of
the clock (``ahead``), match each message and build the events and deliveries of the
matching ones. Each step's best of ``--rounds`` (CPU time, ``time.process_time``), in µs
per message. Run it with ``PYTHONPATH`` set to two checkouts, one after the other, to
compare them: the numbers come from whichever ``notifier`` package is imported.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import preload

from notifier.config import Rule
from notifier.events import CREATED, Event
from notifier.polling.client import parse_page
from notifier.polling.position import advance, ahead
from notifier.polling.tailer import deliveries_for
from notifier.rules import compile_rules
from notifier.store import RoomState
from notifier.testing import RoomlioEmulator
from notifier.util.json import loads

MESSAGES = 1000
RULES = [Rule(name="bench", keywords=("refund",), notify=("sink",))]


def _page() -> bytes:
    emu = RoomlioEmulator(api_key="k")
    preload(emu, ["r"], MESSAGES, MESSAGES // 20)
    answer = {"messages": emu.messages("r"), "hasMore": False, "nextCursor": ""}
    return json.dumps(answer, separators=(",", ":")).encode()


def steps(raw: bytes) -> dict[str, Callable[[], Any]]:
    """Each step of the path alone, and the whole path."""
    matcher, routes, names = compile_rules(RULES), {"bench": ("sink",)}, ("r",)
    state, body = RoomState("r"), loads(raw)
    page = parse_page(body)
    newest = {"newest": page.newest} if "newest" in inspect.signature(ahead).parameters else {}

    def match_and_build() -> list[Any]:
        out = []
        now = time.time()
        for message in page.messages:
            rules = matcher.match(message, CREATED, names)
            if rules:
                event = Event.from_message(CREATED, "r", message, rules, now)
                out.extend(deliveries_for(event, routes))
        return out

    def whole() -> None:
        nonlocal page
        page = parse_page(loads(raw))
        advance(state, page, now=time.time())
        ahead(page.messages, time.time(), **newest)
        match_and_build()

    return {"decode": lambda: loads(raw), "validate": lambda: parse_page(body),
            "advance": lambda: advance(state, page, now=time.time()),
            "ahead": lambda: ahead(page.messages, time.time(), **newest),
            "match + build": match_and_build, "whole path": whole}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import notifier
    print(f"notifier from {Path(notifier.__file__).parent.parent}")
    best: dict[str, float] = {}
    todo = steps(_page())
    for _ in range(args.rounds):
        for name, step in todo.items():
            spent = timeit.timeit(step, number=5, timer=time.process_time) / 5
            best[name] = min(best.get(name, spent), spent)
    for name, spent in best.items():
        print(f"  {name:<14} {spent / MESSAGES * 1e6:6.2f} µs per message")


if __name__ == "__main__":
    main()
