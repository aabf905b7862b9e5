"""Many rooms in one process (issue 7, benchmark 4): memory, CPU, API calls, latency.

    python bench/many_rooms.py [--rooms 1000,10000] [--seconds 20] [--idle 100000]
                               [--repeat 1]

Most rooms are idle. ``--busy`` rooms get a matching message every second; ``--woken``
rooms, quiet until then, get one message at a random moment of the measuring window (what
a quiet room pays for adaptive polling). Each room count runs twice in the same run:
``fixed`` polling (max_poll_interval = poll_interval, the baseline) and ``adaptive``
(quiet rooms back off to max_poll_interval). Measured after a warm-up long enough for
quiet rooms to reach the ceiling: RSS, CPU (% of one core), RoomHistory requests/s,
detection latency (post → receiver) for busy and woken rooms, and the time from start to
the first RoomHistory request.

``capped`` is adaptive with ``max_requests_per_second: --cap``; "max/s" is the busiest
one-second window seen by the emulator. The warm-up starts once every room was polled.

``--idle N`` adds the scheduler alone at N rooms (100,000 by default): the config loaded,
a Tailer per room (sharing routes and settings, as the service's do), one Scheduler whose
steps do no I/O, every room quiet; the RSS after loading the config and at the end, the
load time, and the scheduling CPU over the window. ``--rooms ''`` runs it alone.

``--repeat N`` runs everything N times and prints the median of each figure (the runs'
RSS and first poll too); the JSON keeps every run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
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

from notifier.testing import RoomlioEmulator, WebhookReceiver

POLL, CEILING = 2.0, 30.0
#: Long enough for a quiet room to back off to the ceiling: 2 + 4 + 8 + 16 + 30 s.
WARMUP = 2 + 4 + 8 + 16 + 2.0


async def _until(predicate: object, timeout: float) -> None:
    # cheap polling: the emulator's own wait re-counts every request on every request
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def _busy(emu: RoomlioEmulator, rooms: list[str],
                posted: dict[str, tuple[str, float]]) -> None:
    """A message a second in each busy room, from the start until cancelled."""
    while True:
        for room in rooms:
            posted[emu.post(room, "refund please")["id"]] = ("busy", time.monotonic())
        await asyncio.sleep(1)


async def _wake(emu: RoomlioEmulator, rooms: list[str], seconds: float,
                posted: dict[str, tuple[str, float]]) -> None:
    """One message in each quiet room, at random moments of the window."""
    rng = random.Random(7)
    wake_at = sorted((rng.uniform(0, seconds - 1), room) for room in rooms)
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        while wake_at and wake_at[0][0] <= elapsed:
            posted[emu.post(wake_at.pop(0)[1], "refund please")["id"]] = (
                "woken", time.monotonic())
        await asyncio.sleep(0.05)


async def measure(n_rooms: int, mode: str, args: argparse.Namespace) -> dict[str, object]:
    rooms = [f"room-{i}" for i in range(n_rooms)]
    busy, woken = rooms[:args.busy], rooms[args.busy:args.busy + args.woken]
    posted: dict[str, tuple[str, float]] = {}
    extra: dict[str, object] = {"max_poll_interval": f"{POLL if mode == 'fixed' else CEILING}s"}
    if mode == "capped":
        extra["max_requests_per_second"] = args.cap
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/sink": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "rules.yaml")
            path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms,
                                        str(Path(tmp, "state.db")), poll_interval=f"{POLL}s",
                                        **extra))
            started = time.monotonic()
            proc = await start_notifier(path)
            busy_traffic = asyncio.create_task(_busy(emu, busy, posted))
            try:
                await _until(lambda: emu.requests, 60)
                first_poll = emu.requests[0].time - started
                await _until(lambda: len({r.room for r in emu.requests}) >= n_rooms, 300)
                first_round = time.monotonic() - started
                await asyncio.sleep(WARMUP)
                requests_before, cpu_before = len(emu.requests), cpu_seconds(proc.pid)
                window_start = time.monotonic()
                await _wake(emu, woken, args.seconds, posted)
                window = time.monotonic() - window_start
                requests = len(emu.requests) - requests_before
                times = [r.time for r in emu.requests[requests_before:]]
                busy_traffic.cancel()
                cpu = (cpu_seconds(proc.pid) - cpu_before) / window * 100
                rss = rss_mb(proc.pid)
                await _until(lambda: len(rx.received) >= len(posted), 180)
            finally:
                busy_traffic.cancel()
                await stop(proc)
    delays: dict[str, list[float]] = {"busy": [], "woken": []}
    for r in rx.received:
        kind, at = posted[r.json["data"]["message"]["id"]]
        delays[kind].append(r.at - at)
    busiest = _busiest_second(times)
    return {"rooms": n_rooms, "mode": mode, "rss_mb": rss, "cpu_pct": cpu,
            "requests_per_s": requests / window, "busiest_second": busiest,
            "fixed_polling_requests_per_s": n_rooms / POLL, "first_poll_s": first_poll,
            "first_round_s": first_round, "cap": args.cap if mode == "capped" else None,
            **{f"{k}_p{q}_ms": percentile(v, q / 100) * 1000 if v else float("nan")
               for k, v in delays.items() for q in (50, 99)}}


def _busiest_second(times: list[float]) -> int:
    """The most requests in any one-second window (arrival times in order)."""
    best = start = 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


IDLE_CHILD = r"""
import asyncio, resource, sys, time
from notifier.delivery.formats import load_config
from notifier.polling.policy import next_interval
from notifier.polling.scheduler import Scheduler
from notifier.polling.tailer import Tailer

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

async def main(path, seconds):
    started = time.perf_counter()
    config = load_config(path)
    load_s, loaded_rss = time.perf_counter() - started, rss()
    s = config.roomlio
    routes = {}
    async def step(turn):  # a quiet room: no I/O, nothing new
        turn.quiet += 1
        turn.interval = next_interval(turn.interval, turn.quiet, s.poll_interval,
                                      s.max_poll_interval)
        return turn.interval
    scheduler = Scheduler(step)
    try:  # one budget for the process, as the service's
        from notifier.polling.pagesize import PageBudget
        shared = {"budget": PageBudget()}
    except ImportError:  # a tree from before it (PYTHONPATH= another checkout)
        shared = {}
    for room in config.rooms:
        # a closure per room, as the service's make_tailer passes one
        tailer = Tailer(room, client=None, store=None, matcher=None, routes=routes, settings=s,
                        on_enqueued=lambda added: None, **shared)
        scheduler.add(tailer, s.max_poll_interval,
                      due=time.monotonic() + hash(room.name) % 60_000 / 1000)
        scheduler.turn(room.name).quiet = 100  # long quiet: at the ceiling already
    stop = asyncio.Event()
    runner = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(1)
    before, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (time.process_time() - before) / (time.monotonic() - t0) * 100
    stop.set()
    await runner
    print(rss(), cpu, loaded_rss, load_s)

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def measure_idle(n_rooms: int, seconds: float) -> dict[str, object]:
    rooms = [f"room-{i}" for i in range(n_rooms)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "rules.yaml")
        path.write_text(config_yaml("http://127.0.0.1:9", "http://127.0.0.1:9/sink", rooms,
                                    str(Path(tmp, "state.db")), poll_interval=f"{POLL}s",
                                    max_poll_interval="60s"))
        out = subprocess.run([sys.executable, "-c", IDLE_CHILD, str(path), str(seconds)],
                             check=True, capture_output=True, text=True).stdout.split()
    return {"rooms": n_rooms, "rss_mb": float(out[0]), "scheduling_cpu_pct": float(out[1]),
            "rss_after_load_mb": float(out[2]), "load_s": float(out[3])}


def _median(runs: list[dict[str, object]]) -> dict[str, object]:
    """The first run with each numeric figure replaced by the median over ``runs``."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and key not in ("rooms", "cap"):
            out[key] = statistics.median(float(str(r[key])) for r in runs)
    return {**out, "runs": runs}


def _print(rows: list[dict[str, object]], idle: dict[str, object] | None,
           args: argparse.Namespace) -> None:
    print(f"many rooms: poll_interval {POLL:g}s, adaptive ceiling {CEILING:g}s; {args.busy} "
          f"busy rooms (1 msg/s), {args.woken} woken rooms (1 msg each), {args.seconds:g}s "
          f"window after {WARMUP:g}s warm-up")
    head = ("rooms", "mode", "RSS MB", "CPU %", "req/s", "max/s", "fixed req/s",
            "1st poll s", "1st round s", "busy p50", "busy p99", "woken p50", "woken p99")
    if rows:
        print(" ".join(f"{h:>11}" for h in head))
    for r in rows:
        cells = [r["rooms"], r["mode"], f"{r['rss_mb']:.0f}", f"{r['cpu_pct']:.1f}",
                 f"{r['requests_per_s']:.0f}", f"{r['busiest_second']:.0f}",
                 f"{r['fixed_polling_requests_per_s']:.0f}", f"{r['first_poll_s']:.2f}",
                 f"{r['first_round_s']:.1f}",
                 *(f"{r[k]:.0f}ms" for k in ("busy_p50_ms", "busy_p99_ms", "woken_p50_ms",
                                               "woken_p99_ms"))]
        print(" ".join(f"{c:>11}" for c in cells))
        if args.repeat > 1:
            print(f"{'':>23} runs: RSS {_each(r, 'rss_mb', '.1f')} MB, 1st poll "
                  f"{_each(r, 'first_poll_s', '.2f')} s")
    if idle is not None:
        print(f"scheduler alone, {idle['rooms']:,} quiet rooms (max_poll_interval 60s): "
              f"RSS {idle['rss_mb']:.0f} MB ({_each(idle, 'rss_mb', '.1f')}), after the "
              f"config load {idle['rss_after_load_mb']:.0f} MB, loaded in {idle['load_s']:.2f}s,"
              f" scheduling CPU {idle['scheduling_cpu_pct']:.1f}% of a core "
              f"({_each(idle, 'scheduling_cpu_pct', '.1f')})")


def _each(row: dict[str, object], key: str, spec: str) -> str:
    runs = row["runs"]
    assert isinstance(runs, list)
    return " · ".join(format(run[key], spec) for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", default="1000,10000")
    parser.add_argument("--modes", default="fixed,adaptive,capped")
    parser.add_argument("--busy", type=int, default=10)
    parser.add_argument("--woken", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--cap", type=int, default=300,
                        help="max_requests_per_second of the 'capped' mode (adaptive too)")
    parser.add_argument("--idle", type=int, default=100_000, help="0 skips it")
    parser.add_argument("--repeat", type=int, default=1, help="medians of this many runs")
    args = parser.parse_args()
    cases = [(int(n), mode) for n in args.rooms.split(",") if n for mode in args.modes.split(",")]
    runs: dict[tuple[int, str], list[dict[str, object]]] = {case: [] for case in cases}
    idle_runs = []
    for _ in range(args.repeat):
        for n, mode in cases:
            runs[n, mode].append(asyncio.run(measure(n, mode, args)))
        if args.idle:
            idle_runs.append(measure_idle(args.idle, args.seconds))
    rows = [_median(r) for r in runs.values()]
    idle = _median(idle_runs) if idle_runs else None
    _print(rows, idle, args)
    out = write_results("many_rooms", {"poll_interval": POLL, "max_poll_interval": CEILING,
                                       "rows": rows, "idle_scheduler": idle})
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
