"""Detection-to-delivery latency at a steady message rate (issue 7, benchmark 2).

    python bench/latency.py [--rates 10,100,1000] [--seconds 10] [--poll-interval 1s]

After a warm-up of the same stream (--warmup, not measured: rooms idle before it have
backed off), messages are posted to the emulator at a steady rate; latency is from the moment a
message becomes visible in the emulator to the moment the receiver has accepted it.
The baseline is the configured poll interval: with polling, a message waits on average
half of it and at worst all of it before it is even seen.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    API_KEY,
    SECRET,
    config_yaml,
    percentile,
    start_notifier,
    stop,
    write_results,
)

from notifier.testing import RoomlioEmulator, WebhookReceiver


async def _steady(emu: RoomlioEmulator, rooms: list[str], rate: float, seconds: float,
                  posted: dict[str, float]) -> None:
    interval = 1 / rate
    start = time.monotonic()
    n = 0
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) / interval) + 1
        while n < due:
            message = emu.post(rooms[n % len(rooms)], f"refund {n}")
            posted[message["id"]] = time.monotonic()
            n += 1
        await asyncio.sleep(interval if interval > 0.002 else 0.002)


async def measure(rate: float, seconds: float, poll: str, warmup: float) -> dict[str, float]:
    rooms = [f"room-{i}" for i in range(10)]
    posted: dict[str, float] = {}
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/sink": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "rules.yaml")
            path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms,
                                        str(Path(tmp, "state.db")), poll_interval=poll))
            proc = await start_notifier(path)
            try:
                await emu.wait_requests(len(rooms), timeout=30)
                warm: dict[str, float] = {}  # the stream before it is measured
                await _steady(emu, rooms, rate, warmup, warm)
                await _steady(emu, rooms, rate, seconds, posted)
                await rx.wait_count(len(warm) + len(posted), timeout=120)
            finally:
                await stop(proc)
        delays = [r.at - posted[r.json["data"]["message"]["id"]] for r in rx.received
                  if r.json["data"]["message"]["id"] in posted]
    return {"rate": rate, "events": len(delays), "p50_ms": percentile(delays, 0.5) * 1000,
            "p95_ms": percentile(delays, 0.95) * 1000, "p99_ms": percentile(delays, 0.99) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10,100,1000")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--poll-interval", default="1s")
    parser.add_argument("--warmup", type=float, default=3,
                        help="seconds of the stream before measuring (rooms reach their pace)")
    args = parser.parse_args()
    rows = [asyncio.run(measure(float(r), args.seconds, args.poll_interval, args.warmup))
            for r in args.rates.split(",")]
    print(f"latency: post → receiver, poll_interval {args.poll_interval} (the baseline: "
          "worst-case wait before a message is even seen)")
    print(f"{'msgs/s':>8} {'events':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(f"{row['rate']:>8.0f} {row['events']:>8} {row['p50_ms']:>8.0f} "
              f"{row['p95_ms']:>8.0f} {row['p99_ms']:>8.0f}")
    out = write_results("latency", {"poll_interval": args.poll_interval, "rows": rows})
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
