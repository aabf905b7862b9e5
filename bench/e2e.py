"""End-to-end throughput (issue 7, benchmarks 1 and 5): the notifier against a bare pipeline.

    python bench/e2e.py [--rooms 10] [--messages 2000] [--match 1.0] [--repeat 3]

N rooms × M messages are preloaded in the Roomlio emulator; a verifying receiver counts
deliveries. Each contender runs as a subprocess; events/s is measured from its first
RoomHistory request to the last delivery the receiver accepted. Contenders, in the same
run: the bare pipeline (fetch → sign → POST, concurrency 64, no rules, no durability),
`notifier run` with its SQLite state on disk, and the same with the state on tmpfs
(/dev/shm), which shows what the fsyncs cost. Medians over --repeat runs; ratios are
against the bare pipeline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, HERE, SECRET, config_yaml, write_results

from notifier.testing import RoomlioEmulator, WebhookReceiver


async def _measure(command: list[str], emu: RoomlioEmulator, rx: WebhookReceiver,
                   expected: int) -> float:
    emu.requests.clear()
    rx.received.clear()
    rx.attempts.clear()
    proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        await rx.wait_count(expected, timeout=600)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
    start = emu.requests[0].time
    return expected / (rx.received[-1].at - start)


async def run(args: argparse.Namespace) -> dict:
    rooms = [f"room-{i}" for i in range(args.rooms)]
    matching = int(args.messages * args.match)
    results: dict[str, list[float]] = {"bare": [], "notifier (disk)": [],
                                       "notifier (tmpfs)": []}
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/sink": SECRET, "/bare": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
            for i in range(args.messages):
                emu.post(room, f"refund please, order {i}" if i < matching else f"hello {i}")
        total = matching * len(rooms)
        bare_total = args.messages * len(rooms)
        for _ in range(args.repeat):
            bare = [sys.executable, str(HERE / "bare.py"), "--url", emu.url, "--api-key",
                    API_KEY, "--secret", SECRET, "--target", rx.url_for("/bare"),
                    "--rooms", ",".join(rooms)]
            results["bare"].append(await _measure(bare, emu, rx, bare_total))
            for label, folder in (("notifier (disk)", None), ("notifier (tmpfs)", "/dev/shm")):
                with tempfile.TemporaryDirectory(dir=folder) as tmp:
                    path = Path(tmp, "rules.yaml")
                    path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms,
                                                str(Path(tmp, "state.db"))))
                    command = [sys.executable, "-m", "notifier", "run", "--config", str(path),
                               "--log-level", "ERROR"]
                    results[label].append(await _measure(command, emu, rx, total))
    return {"rooms": args.rooms, "messages_per_room": args.messages, "match": args.match,
            "repeat": args.repeat, "events_per_s": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--match", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    rates = report["events_per_s"]
    bare = statistics.median(rates["bare"])
    print(f"e2e: {args.rooms} rooms x {args.messages} messages, {args.match:.0%} matching, "
          f"median of {args.repeat}")
    print(f"{'contender':<18} {'events/s (median)':>18} {'runs':>28} {'vs bare':>8} "
          f"{'polled msg/s':>13}")
    for label, values in rates.items():
        med = statistics.median(values)
        runs = ", ".join(f"{v:,.0f}" for v in values)
        polled = med if label == "bare" else med / args.match  # bare POSTs every message
        print(f"{label:<18} {med:>18,.0f} {runs:>28} {med / bare:>8.2f} {polled:>13,.0f}")
    name = "e2e" if args.match == 1.0 else f"e2e_match{round(args.match * 100)}"
    out = write_results(name, report)
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
