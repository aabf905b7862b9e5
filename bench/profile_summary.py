"""Summarise py-spy raw stacks (``py-spy record -f raw``, as bench/e2e.py --profile writes).

    python bench/profile_summary.py DIR_OR_FILE... [--top 25] [--thread loop|other] [--cpu-us N]

Prints where the samples fall: by thread, by area (exclusive: the innermost frame that
belongs to an area; inclusive: a stack counts once for each area of its frames; see
AREAS), and by function (self: the innermost frame). ``--thread loop`` (or ``other``)
keeps one thread's samples; ``--cpu-us`` (that thread's CPU µs per event, as bench/e2e.py
prints it) turns the shares into µs per event. Samples are taken of threads that are not
idle, which includes waiting for the GIL or the disk: read the shares, not the sum.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

#: Areas, first match wins for each frame (substring of the frame's file path or name).
AREAS = [
    ("tenacity", "tenacity/"),
    ("aiohttp client", "aiohttp/"),
    ("yarl/multidict", "yarl/"),
    ("yarl/multidict", "multidict/"),
    ("store (notifier/store)", "notifier/store/"),
    ("sqlite3 / thread pool", "concurrent/futures"),
    ("delivery: transport", "notifier/delivery/transport"),
    ("delivery: transport", "notifier/delivery/lean_post"),
    ("delivery: transport", "notifier/delivery/inline_request"),
    ("delivery: transport", "notifier/delivery/deadlines"),
    ("delivery: formats/signing", "notifier/delivery/formats"),
    ("delivery: formats/signing", "notifier/signing"),
    ("delivery: health/breaker", "notifier/delivery/health"),
    ("delivery: health/breaker", "notifier/delivery/breaker"),
    ("delivery: rate limit", "notifier/delivery/ratelimit"),
    ("delivery: completer", "notifier/delivery/completer"),
    ("delivery: sender", "notifier/delivery/sender"),
    ("delivery: sender", "notifier/delivery/attempts"),
    ("delivery: sender", "notifier/delivery/lanes"),
    ("delivery: grouping", "notifier/delivery/grouping"),
    ("polling", "notifier/polling/"),
    ("rules", "notifier/rules/"),
    ("runtime", "notifier/runtime/"),
    ("logging", "logging/"),
    ("event loop (uvloop, asyncio)", "asyncio/"),
    ("json", "json"),
]


def _area(frame: str) -> str | None:
    for name, needle in AREAS:
        if needle in frame:
            return name
    return None


_LINE = re.compile(r":\d+\)$")


def load(paths: list[Path]) -> list[tuple[list[str], int]]:
    """Stacks (outermost frame first, line numbers dropped) and their sample counts."""
    stacks = []
    for path in paths:
        files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        for f in files:
            for line in f.read_text().splitlines():
                frames, _, count = line.rpartition(" ")
                if frames:
                    stacks.append(([_LINE.sub(")", x) for x in frames.split(";")], int(count)))
    return stacks


_TID = re.compile(r"^thread \((\d+)\)")


def _thread(frames: list[str], main_tids: set[str]) -> str:
    """The thread of a stack (py-spy --threads puts it first): the event loop's (the
    main thread), or another (the SQLite store's, the resolver's)."""
    found = _TID.match(frames[0])
    if found is None:
        return "?"
    return "event loop thread" if found.group(1) in main_tids else "other threads"


def _main_tids(stacks: list[tuple[list[str], int]]) -> set[str]:
    return {m.group(1) for frames, _ in stacks
            if (m := _TID.match(frames[0])) and frames[0].endswith("MainThread")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--cpu-us", type=float, default=None)
    parser.add_argument("--thread", choices=["loop", "other"], default=None,
                        help="only the event loop thread's samples, or only the others'")
    args = parser.parse_args()
    stacks = load(args.paths)
    main_tids = _main_tids(stacks)
    if args.thread:
        wanted = "event loop thread" if args.thread == "loop" else "other threads"
        stacks = [(f, n) for f, n in stacks if _thread(f, main_tids) == wanted]
    total = sum(n for _, n in stacks)
    areas: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for frames, n in stacks:
        named = [a for a in map(_area, frames) if a]
        for area in set(named):
            areas[area] += n
        own[named[-1] if named else "other (interpreter, C code called directly)"] += n
        leaves[frames[-1]] += n
        threads[_thread(frames, main_tids)] += n

    def show(title: str, counter: collections.Counter[str]) -> None:
        print(f"\n{title} ({total} samples)")
        for key, n in counter.most_common(args.top):
            us = f" {n / total * args.cpu_us:7.1f} µs" if args.cpu_us else ""
            print(f"{n / total:6.1%}{us}  {key}")

    show("by thread", threads)
    show("by area, exclusive (the innermost frame's area)", own)
    show("by area, inclusive", areas)
    show("by function, self", leaves)


if __name__ == "__main__":
    main()
