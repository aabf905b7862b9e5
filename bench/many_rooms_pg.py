"""Many rooms on PostgreSQL, 1 instance against 3 (issue 8's benchmark).

    python bench/many_rooms_pg.py [--rooms 1000] [--instances 1,3] [--seconds 20]

A real PostgreSQL 15 is started from the system's binaries (as the tests do, with
fsync off: this measures the notifier, not the disk). ``--busy`` rooms get one matching
message a second; the rest are idle. Fixed polling (poll_interval = max_poll_interval)
so that 1 and 3 instances ask Roomlio the same amount. Reported, summed over the
instances: RSS, CPU (% of one core), RoomHistory requests/s, and the busy rooms'
detection latency (post → receiver). The baseline is the single instance in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

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
from tests.pg import PgServer, find_bindir  # noqa: E402

POLL = 2.0
WARMUP = 25.0  # leases claimed and rebalanced across instances


async def measure(server: PgServer, n_rooms: int, instances: int, busy: int,
                  seconds: float) -> dict[str, float]:
    rooms = [f"room-{i}" for i in range(n_rooms)]
    posted: dict[str, float] = {}
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/sink": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "rules.yaml")
            path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms,
                                        server.create_database(), poll_interval=f"{POLL}s",
                                        max_poll_interval=f"{POLL}s"))
            procs = [await start_notifier(path) for _ in range(instances)]
            try:
                await asyncio.sleep(WARMUP)
                before = len(emu.requests)
                cpu_before = sum(cpu_seconds(p.pid) for p in procs)
                start = time.monotonic()
                while time.monotonic() - start < seconds:
                    for room in rooms[:busy]:
                        posted[emu.post(room, "refund please")["id"]] = time.monotonic()
                    await asyncio.sleep(1)
                window = time.monotonic() - start
                requests = len(emu.requests) - before
                cpu = (sum(cpu_seconds(p.pid) for p in procs) - cpu_before) / window * 100
                rss = sum(rss_mb(p.pid) for p in procs)
                await rx.wait_for(lambda r: len(r.unique_ids()) >= len(posted), timeout=120)
            finally:
                for proc in procs:
                    await stop(proc)
        delays = [r.at - posted[r.json["data"]["message"]["id"]] for r in rx.received
                  if r.json["data"]["message"]["id"] in posted]
    return {"rooms": n_rooms, "instances": instances, "rss_mb_total": rss,
            "cpu_pct_total": cpu, "requests_per_s": requests / window,
            "fixed_polling_requests_per_s": n_rooms / POLL, "events": len(posted),
            "p50_ms": percentile(delays, 0.5) * 1000, "p99_ms": percentile(delays, 0.99) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--instances", default="1,3")
    parser.add_argument("--busy", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found: install the postgresql package")
    server = PgServer(bindir)
    try:
        server.init()
        server.start()
        rows = [asyncio.run(measure(server, args.rooms, int(n), args.busy, args.seconds))
                for n in args.instances.split(",")]
    finally:
        server.destroy()
    base = rows[0]
    print(f"many rooms on PostgreSQL: {args.rooms} rooms, {args.busy} busy (1 msg/s), "
          f"poll {POLL:g}s fixed; totals over the instances")
    print(f"{'instances':>9} {'RSS MB':>7} {'CPU %':>6} {'req/s':>6} {'fixed':>6} "
          f"{'events':>6} {'p50 ms':>7} {'p99 ms':>7} {'CPU vs 1':>8}")
    for r in rows:
        print(f"{r['instances']:>9} {r['rss_mb_total']:>7.0f} {r['cpu_pct_total']:>6.1f} "
              f"{r['requests_per_s']:>6.0f} {r['fixed_polling_requests_per_s']:>6.0f} "
              f"{r['events']:>6} {r['p50_ms']:>7.0f} {r['p99_ms']:>7.0f} "
              f"{r['cpu_pct_total'] / base['cpu_pct_total']:>8.2f}")
    out = write_results("many_rooms_pg", {"poll_interval": POLL, "rows": rows})
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
