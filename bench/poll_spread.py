"""How evenly the notifier spreads its RoomHistory requests, and what a quiet room costs (issue 17).

    python bench/poll_spread.py [--rooms 1000] [--scale 0.2] [--measure 3]
                                [--scenarios fixed,adaptive,fixed+budget,adaptive+budget]
                                [--code before,after] [--base /tmp/spread-base]
                                [--warmup 3.5] [--edits 20]

Every room holds one message, posted at the start (so its history lies in the edit window,
``edit_lookback`` 1h), and stays quiet; ``--edits`` rooms get that message edited, into one
that matches a rule, at a random moment of the measuring window. The notifier runs as a
subprocess against the real emulator (this process); ``before`` runs the code at
``--base`` (a checkout of main), ``after`` the code of this tree, in the same run.

The intervals are the defaults (poll_interval 5s, max_poll_interval 60s,
edit_scan_interval 60s) times ``--scale``, and so is the 5 s window the requests are
counted in: at ``--scale 0.2`` the windows are 1 s and a "minute" is 12 s. Scenarios:
``fixed`` (poll_interval = max_poll_interval), ``adaptive`` (the defaults), either
``+budget`` (``max_requests_per_second`` = 1.5 × rooms / max_poll_interval) or ``+short``
(0.6 ×: the budget cannot poll each room once per max_poll_interval).

Measured after a warm-up long enough for quiet rooms to reach max_poll_interval, over
``--measure`` max_poll_intervals: requests per window (mean, peak, minimum, peak/mean),
each room's longest gap between two requests (over all rooms, against
max_poll_interval), requests per room per (scaled) minute split into polls and edit scans
(a request whose ``since`` lies edit_lookback back), and how long after the edit each
edited message reached the receiver (the bound: edit_scan_interval +
max_poll_interval / 2).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, SECRET, config_yaml, stop, write_results

from notifier.testing import RoomlioEmulator, WebhookReceiver
from notifier.util.time import parse_time

TREE = Path(__file__).resolve().parent.parent
DEFAULTS = {"poll_interval": 5.0, "max_poll_interval": 60.0, "edit_scan_interval": 60.0}
LOOKBACK = 3600.0


def intervals(scenario: str, rooms: int, scale: float) -> dict[str, Any]:
    """The roomlio: settings of a scenario at ``scale``."""
    poll, ceiling = DEFAULTS["poll_interval"] * scale, DEFAULTS["max_poll_interval"] * scale
    settings: dict[str, Any] = {
        "poll_interval": f"{ceiling if scenario.startswith('fixed') else poll}s",
        "max_poll_interval": f"{ceiling}s", "edit_lookback": f"{LOOKBACK:g}s",
        "edit_scan_interval": f"{DEFAULTS['edit_scan_interval'] * scale}s", "page_size": 100}
    if scenario.endswith("+budget"):
        settings["max_requests_per_second"] = math.ceil(1.5 * rooms / ceiling)
    elif scenario.endswith("+short"):
        settings["max_requests_per_second"] = math.ceil(0.6 * rooms / ceiling)
    return settings


async def _edit_some(emu: RoomlioEmulator, ids: dict[str, str], seconds: float,
                     edited: dict[str, float]) -> None:
    """Edit each room's message of ``ids`` once, at random moments of the window."""
    rng = random.Random(17)
    plan = sorted((rng.uniform(0, seconds * 0.6), room) for room in ids)
    start = time.monotonic()
    for at, room in plan:
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        emu.edit(ids[room], f"refund for {room}")
        edited[room] = time.monotonic()


async def run_one(code: str, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    """One notifier run; the figures of its measuring window."""
    rooms = [f"room-{i}" for i in range(args.rooms)]
    settings = intervals(scenario, args.rooms, args.scale)
    ceiling = DEFAULTS["max_poll_interval"] * args.scale
    # the ramp, the ladder to the ceiling (1+1+2+4+8+12 poll_intervals) and a round more
    warmup = args.warmup * ceiling
    measure = args.measure * ceiling
    edited: dict[str, float] = {}
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/sink": SECRET}) as rx:
        ids = {}
        for room in rooms:
            emu.add_room(key=room)
            ids[room] = emu.post(room, "hello")["id"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "rules.yaml")
            path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms,
                                        str(Path(tmp, "state.db")), **settings))
            log = Path(tmp, "notifier.log")
            proc = await _start(code, path, log, args.base)
            try:
                await asyncio.sleep(warmup)
                begin = time.monotonic()
                await asyncio.gather(
                    asyncio.sleep(measure),
                    _edit_some(emu, {r: ids[r] for r in rooms[:args.edits]}, measure, edited))
                end = time.monotonic()
                await _settle(rx, len(edited), ceiling * 2)
            finally:
                await stop(proc)
            warned = "cannot poll" in log.read_text()
    figures = _figures(emu.requests, begin, end, settings, args)
    figures.update(code=code, scenario=scenario, rooms=args.rooms, scale=args.scale,
                   budget=settings.get("max_requests_per_second"), budget_warned=warned,
                   **_edit_delays(rx, edited, settings))
    return figures


async def _start(code: str, config: Path, log: Path, base: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=base if code == "before" else str(TREE))
    # cwd off this tree: ``-m`` puts the working directory first on sys.path
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier", "run", "--config", str(config), "--log-level",
        "WARNING", stdin=asyncio.subprocess.DEVNULL, stderr=log.open("w"), env=env,
        cwd=config.parent)


async def _settle(rx: WebhookReceiver, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(rx.received) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


def _figures(requests: list[Any], begin: float, end: float, settings: dict[str, Any],
             args: argparse.Namespace) -> dict[str, Any]:
    """Window counts, gaps and requests per room of the requests in [begin, end)."""
    window = 5.0 * args.scale
    ceiling = DEFAULTS["max_poll_interval"] * args.scale
    inside = [r for r in requests if begin <= r.time < end]
    counts = [0] * int((end - begin) // window)
    for r in inside:
        slot = int((r.time - begin) // window)
        if slot < len(counts):
            counts[slot] += 1
    mean = statistics.mean(counts)
    scans = sum(_is_scan(r) for r in inside)
    minutes = (end - begin) / (60 * args.scale)
    return {"window_s": window, "windows": len(counts), "mean": mean, "peak": max(counts),
            "minimum": min(counts), "peak_over_mean": max(counts) / mean if mean else None,
            "requests_per_s": len(inside) / (end - begin),
            "not_200": sum(r.status != 200 for r in inside),
            "max_gap_s": _max_gap(requests, begin, end), "max_poll_interval_s": ceiling,
            "per_room_minute": len(inside) / args.rooms / minutes,
            "polls_per_room_minute": (len(inside) - scans) / args.rooms / minutes,
            "scans_per_room_minute": scans / args.rooms / minutes}


def _is_scan(record: Any) -> bool:
    """An edit scan asks ``since`` about edit_lookback ago (a poll by cursor, or since the
    room's newest message, which is younger)."""
    since = record.params.get("since")
    moment = parse_time(since) if isinstance(since, str) else None
    return moment is not None and time.time() - moment.timestamp() > LOOKBACK * 0.9


def _max_gap(requests: list[Any], begin: float, end: float) -> float:
    """The longest time any room went without a request, within [begin, end) (a gap that
    began before ``begin`` counts from its start)."""
    last: dict[str | None, float] = {}
    longest = 0.0
    for r in requests:
        if r.time >= end:
            break
        before = last.get(r.room)
        if before is not None and r.time >= begin:
            longest = max(longest, r.time - before)
        last[r.room] = r.time
    for seen in last.values():  # a room silent up to the end of the window
        longest = max(longest, end - seen)
    return longest


def _edit_delays(rx: WebhookReceiver, edited: dict[str, float],
                 settings: dict[str, Any]) -> dict[str, Any]:
    delays = []
    for record in rx.received:
        body = record.body.decode(errors="replace")
        for room, at in edited.items():
            if f"refund for {room}\"" in body:
                delays.append(record.at - at)
    scan = float(settings["edit_scan_interval"][:-1])
    ceiling = float(settings["max_poll_interval"][:-1])
    return {"edits": len(edited), "edits_seen": len(delays),
            "edit_delay_max_s": max(delays, default=None),
            "edit_delay_median_s": statistics.median(delays) if delays else None,
            "edit_bound_s": scan + ceiling / 2}


def _base_tree(path: str, commit: str) -> None:
    """A checkout of ``commit`` at ``path`` (git archive: no worktree of the repo)."""
    if Path(path, "notifier").is_dir():
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(TREE), "archive", commit, "notifier"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", path], input=archive, check=True)


def _row(f: dict[str, Any]) -> str:
    def num(v: Any, fmt: str = ".2f") -> str:
        return "–" if v is None else format(v, fmt)
    return (f"| {f['rooms']:,} | {f['scenario']} | {f['code']} | {num(f['budget'], 'd')} "
            f"| {f['mean']:.1f} | {f['peak']} | {f['minimum']} | {num(f['peak_over_mean'])} "
            f"| {f['max_gap_s']:.1f} / {f['max_poll_interval_s']:g} "
            f"| {f['per_room_minute']:.2f} ({f['polls_per_room_minute']:.2f} + "
            f"{f['scans_per_room_minute']:.2f}) "
            f"| {f['edits_seen']}/{f['edits']}, max {num(f['edit_delay_max_s'], '.1f')} "
            f"(bound {f['edit_bound_s']:g}) | {'yes' if f['budget_warned'] else 'no'} "
            f"| {f.get('not_200', '–')} |")


HEADER = ("| rooms | scenario | code | budget/s | mean/window | peak | min | peak/mean "
          "| max gap / max_poll_interval (s) | requests/room/min (polls + scans) "
          "| edits seen, delay s | budget warning | not 200 |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--measure", type=float, default=3.0,
                        help="max_poll_intervals measured after the warm-up")
    parser.add_argument("--warmup", type=float, default=3.5,
                        help="max_poll_intervals from the start to the measuring window")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--scenarios", default="fixed,adaptive,fixed+budget,adaptive+budget")
    parser.add_argument("--code", default="before,after")
    parser.add_argument("--base", default="/tmp/spread-base")
    parser.add_argument("--base-commit", default="22e1d84")
    args = parser.parse_args()
    if "before" in args.code:
        _base_tree(args.base, args.base_commit)
    print(HEADER, flush=True)
    results = []
    for scenario in args.scenarios.split(","):
        for code in args.code.split(","):
            figures = await run_one(code, scenario, args)
            results.append(figures)
            print(_row(figures), flush=True)
    out = write_results(f"poll_spread_{args.rooms}", {"runs": results})
    print(f"\n(JSON: {out})")


if __name__ == "__main__":
    asyncio.run(main())
