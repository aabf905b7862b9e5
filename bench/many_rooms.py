"""Many rooms in one process (issue 7, benchmark 4): memory, CPU, API calls, latency.

    python bench/many_rooms.py [--rooms 1000,10000] [--active 10] [--seconds 20]

Most rooms are idle; ``--active`` rooms get one matching message a second. Reported for
the notifier process: RSS, CPU (% of one core) over the measuring window, RoomHistory
requests/s, and detection latency (post → receiver) in the active rooms. The baseline
for API calls is fixed polling: rooms / poll_interval requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    API_KEY,
    SECRET,
    config_yaml,
    cpu_seconds,
    percentile,
    rss_mb,
    start_notifier,
    stop,
    write_results,
)

from notifier.testing import RoomlioEmulator, WebhookReceiver  # noqa: E402

POLL = 5.0


async def measure(n_rooms: int, active: int, seconds: float) -> dict[str, float]:
    rooms = [f"room-{i}" for i in range(n_rooms)]
    posted: dict[str, float] = {}
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/sink": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "rules.yaml")
            path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms,
                                        str(Path(tmp, "state.db")), poll_interval=f"{POLL}s"))
            proc = await start_notifier(path)
            try:
                started = time.monotonic()
                await emu.wait_requests(n_rooms, timeout=300)
                first_round = time.monotonic() - started
                requests_before, cpu_before = len(emu.requests), cpu_seconds(proc.pid)
                window_start = time.monotonic()
                while time.monotonic() - window_start < seconds:
                    for room in rooms[:active]:
                        posted[emu.post(room, "refund please")["id"]] = time.monotonic()
                    await asyncio.sleep(1)
                window = time.monotonic() - window_start
                requests = len(emu.requests) - requests_before
                cpu = (cpu_seconds(proc.pid) - cpu_before) / window * 100
                rss = rss_mb(proc.pid)
                await rx.wait_count(len(posted), timeout=120)
            finally:
                await stop(proc)
        delays = [r.at - posted[r.json["data"]["message"]["id"]] for r in rx.received]
    return {"rooms": n_rooms, "rss_mb": rss, "cpu_pct": cpu, "requests_per_s": requests / window,
            "fixed_polling_requests_per_s": n_rooms / POLL, "first_round_s": first_round,
            "p50_ms": percentile(delays, 0.5) * 1000, "p99_ms": percentile(delays, 0.99) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", default="1000,10000")
    parser.add_argument("--active", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    rows = [asyncio.run(measure(int(n), args.active, args.seconds))
            for n in args.rooms.split(",")]
    print(f"many rooms: {args.active} active rooms, 1 msg/s each, poll_interval {POLL:g}s")
    print(f"{'rooms':>7} {'RSS MB':>7} {'CPU %':>6} {'req/s':>7} {'fixed req/s':>12} "
          f"{'1st round s':>12} {'p50 ms':>7} {'p99 ms':>7}")
    for r in rows:
        print(f"{r['rooms']:>7} {r['rss_mb']:>7.0f} {r['cpu_pct']:>6.1f} "
              f"{r['requests_per_s']:>7.0f} {r['fixed_polling_requests_per_s']:>12.0f} "
              f"{r['first_round_s']:>12.1f} {r['p50_ms']:>7.0f} {r['p99_ms']:>7.0f}")
    out = write_results("many_rooms", {"poll_interval": POLL, "rows": rows})
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
