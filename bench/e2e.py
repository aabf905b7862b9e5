"""End-to-end throughput (issue 7, benchmarks 1 and 5): the notifier against a bare pipeline.

    python bench/e2e.py [--rooms 10] [--messages 2000] [--match 1.0] [--repeat 3]

N rooms × M messages are preloaded in the Roomlio emulator; a lean verifying receiver
(bench/fast_receiver.py, its own process) counts distinct deliveries. Each contender runs
as a subprocess; events/s is measured from its first RoomHistory request to the last
delivery the receiver accepted. Contenders, in the same run: the bare pipeline (fetch →
sign → POST, concurrency 64, no rules, no durability), `notifier run` with its SQLite
state on disk, the same with the state on tmpfs (/dev/shm), which shows what the fsyncs
cost, and the same on disk with one delivery worker process (`delivery.workers: 1`).
Medians over --repeat runs; ratios are against the bare pipeline measured in the same run.
The CPU each contender used from its first RoomHistory request to the last delivery (its
main thread; its other threads, such as the SQLite store's, and worker processes) is read
from /proc and given in µs per delivered event.

    --contenders bare,disk     run only these (bare, disk, aiohttp, pyreqwest, tmpfs, worker;
                               "disk" uses delivery.http_client: auto, the default (aiohttp
                               since the eighth pass; pyreqwest, when installed, in older
                               trees), "aiohttp" and "pyreqwest" name the client); "fetch" (not
                               run unless named) fetches and decodes every page and POSTs
                               nothing (bench/bare.py --fetch-only): the polled messages/s
                               the emulator can serve on this machine, a ceiling for the rest
    --profile DIR              py-spy samples the disk contenders, aiohttp too (raw stacks in DIR,
                               summarised by bench/profile_summary.py)
    --baseline-tree DIR        adds "baseline (disk)" (and "baseline (disk, aiohttp)" or
                               "(disk, pyreqwest)" when those are contenders): the same
                               contenders run from another checkout (PYTHONPATH=DIR), to
                               compare two commits in one run
    --page-size N              the page size every contender reads (the notifiers'
                               roomlio.page_size; default 1000, the API's maximum; the
                               notifier's own default is 100)
    --gc-stats                 times the garbage collector in every contender's process
                               (bench/gcstats/sitecustomize.py): µs per event spent in it,
                               start-up included, and its collections; and the peak RSS of
                               the contender's largest process
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, HERE, SECRET, config_yaml, preload, stop, write_results

from notifier.testing import RoomlioEmulator


class _Receiver:
    """bench/fast_receiver.py in its own process, driven over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port

    @classmethod
    async def start(cls) -> _Receiver:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "fast_receiver.py"), "--secret", SECRET,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        ready = (await proc.stdout.readline()).split()
        return cls(proc, int(ready[1]))

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def expect(self, path: str, n: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"expect {path} {n}\n".encode())

    async def done(self) -> tuple[float, int, int]:
        """(last arrival, duplicates, bad signatures) once the expected count arrived."""
        assert self.proc.stdout is not None
        _, _, _, last, duplicates, bad = (await self.proc.stdout.readline()).split()
        return float(last), int(duplicates), int(bad)

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.wait()


def _tree_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of ``pid``'s main thread, and of its other threads and child
    processes (the store's thread, the delivery workers)."""
    main, rest = 0.0, 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if task.name == str(pid):
            main += used
        else:
            rest += used
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                rest += sum(_tree_cpu(int(child)))
    return main, rest


async def _first_request(emu: RoomlioEmulator) -> None:
    while not emu.requests:
        await asyncio.sleep(0.002)


def _gc_env(tree: str | None, gc_dir: Path | None) -> dict[str, str] | None:
    """The contender's environment: ``tree`` first on its path, the collector's probe on."""
    if tree is None and gc_dir is None:
        return None
    paths = [tree] if tree is not None else []
    env = dict(os.environ)
    if gc_dir is not None:
        paths.append(str(HERE / "gcstats"))
        env["NOTIFIER_GCSTATS"] = str(gc_dir)
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _gc_seconds(gc_dir: Path) -> tuple[float, int, float]:
    """Seconds in the collector and collections, over the processes of one run, and the
    largest peak RSS of one of them in MB."""
    seconds, collections, peak = 0.0, 0, 0.0
    for path in gc_dir.glob("*.json"):
        report = json.loads(path.read_text())
        peak = max(peak, report["peak_rss_kb"] / 1024)
        for generation in report["generations"].values():
            seconds += generation["seconds"]
            collections += generation["collections"]
    return seconds, collections, peak


async def _measure(command: list[str], emu: RoomlioEmulator, expected: int,
                   finished: Callable[[asyncio.subprocess.Process], Awaitable[float]],
                   profile: Path | None = None, tree: str | None = None,
                   gc_dir: Path | None = None, stdout: int | None = None
                   ) -> tuple[float, tuple[float, float]]:
    """(events/s, CPU µs per event in (the main thread, the rest)) of one run of
    ``command``, ``finished`` giving the time (``time.monotonic``) its last event was
    done; ``stdout``: asyncio.subprocess.PIPE when ``finished`` reads the output."""
    emu.requests.clear()
    env = _gc_env(tree, gc_dir)
    # run from a folder without a notifier package: `python -m` puts the working directory
    # ahead of PYTHONPATH, so from the repository a --baseline-tree ran this tree
    proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=stdout,
                                                stderr=asyncio.subprocess.DEVNULL, env=env,
                                                cwd=tempfile.gettempdir())
    spy = None
    try:
        # CPU counted from the first RoomHistory request, like the rate: start-up (imports,
        # config) is not per event; nor is it profiled, or its samples would be read as
        # per-event work by profile_summary --cpu-us
        await asyncio.wait_for(_first_request(emu), timeout=60)
        main0, rest0 = _tree_cpu(proc.pid)
        if profile is not None:
            spy = await asyncio.create_subprocess_exec(
                _PY_SPY, "record", "--threads", "--pid", str(proc.pid), "--nonblocking",
                "-r", "250", "-f", "raw", "-o", str(profile),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        last = await asyncio.wait_for(finished(proc), timeout=600)
        main1, rest1 = _tree_cpu(proc.pid)
    finally:
        await stop(proc)
        if spy is not None:
            await spy.wait()
    per_event = 1e6 / expected
    return (expected / (last - emu.requests[0].time),
            ((main1 - main0) * per_event, (rest1 - rest0) * per_event))


def _received(rx: _Receiver, path: str, expected: int
              ) -> Callable[[asyncio.subprocess.Process], Awaitable[float]]:
    """A run is finished when the receiver has ``expected`` distinct deliveries at
    ``path``, every one signed right."""
    rx.expect(path, expected)

    async def finished(_proc: asyncio.subprocess.Process) -> float:
        last, _duplicates, bad = await rx.done()
        if bad:
            raise SystemExit(f"{bad} deliveries with a bad signature")
        return last
    return finished


async def _fetched(proc: asyncio.subprocess.Process) -> float:
    """A bench/bare.py --fetch-only run is finished when it says so (``fetched <time>``)."""
    assert proc.stdout is not None
    return float((await proc.stdout.readline()).split()[1])


async def run(args: argparse.Namespace) -> dict:
    rooms = [f"room-{i}" for i in range(args.rooms)]
    matching = int(args.messages * args.match)
    contenders = {label: spec for label, spec in CONTENDERS.items()
                  if _SHORT[label] in args.contenders}
    if args.baseline_tree:
        baselines = {"baseline (disk)": (None, 0, "auto")}
        for client in ("aiohttp", "pyreqwest"):
            if client in args.contenders:
                baselines[f"baseline (disk, {client})"] = (None, 0, client)
        contenders = {**baselines, **contenders}
    results: dict[str, list[float]] = {"bare": [], "fetch": [],
                                       **{label: [] for label in contenders}}
    cpu: dict[str, list[tuple[float, float]]] = {label: [] for label in results}
    gcs: dict[str, list[tuple[float, int, float]]] = {label: [] for label in results}
    profile = None if args.profile is None else Path(args.profile).resolve()
    rx = await _Receiver.start()
    try:
        async with RoomlioEmulator(api_key=API_KEY) as emu:
            preload(emu, rooms, args.messages, matching)
            total = matching * len(rooms)
            bare_total = args.messages * len(rooms)
            for _ in range(args.repeat):
                bare = [sys.executable, str(HERE / "bare.py"), "--url", emu.url, "--api-key",
                        API_KEY, "--secret", SECRET, "--target", rx.url_for("/bare"),
                        "--rooms", ",".join(rooms), "--page-size", str(args.page_size)]
                if "fetch" in args.contenders:
                    rate, us = await _measure([*bare, "--fetch-only"], emu, bare_total,
                                              _fetched, stdout=asyncio.subprocess.PIPE)
                    results["fetch"].append(rate)
                    cpu["fetch"].append(us)
                if "bare" in args.contenders:
                    with _gc_folder(args.gc_stats) as gc_dir:
                        rate, us = await _measure(bare, emu, bare_total,
                                                  _received(rx, "/bare", bare_total),
                                                  gc_dir=gc_dir)
                        _count_gc(gcs, "bare", gc_dir, bare_total)
                    results["bare"].append(rate)
                    cpu["bare"].append(us)
                for label, (folder, workers, client) in contenders.items():
                    with tempfile.TemporaryDirectory(dir=folder) as tmp:
                        path = Path(tmp, "rules.yaml")
                        path.write_text(config_yaml(emu.url, rx.url_for("/sink"), rooms,
                                                    str(Path(tmp, "state.db")), workers=workers,
                                                    http_client=client,
                                                    page_size=args.page_size))
                        command = [sys.executable, "-m", "notifier", "run", "--config", str(path),
                                   "--log-level", "ERROR"]
                        spy = None
                        if profile is not None and "(disk" in label:
                            profile.mkdir(parents=True, exist_ok=True)
                            name = "-".join(label.replace(",", "").strip("()").split())
                            spy = profile / f"{name}-{len(results[label])}.txt"
                        tree = args.baseline_tree if label.startswith("baseline") else None
                        with _gc_folder(args.gc_stats) as gc_dir:
                            rate, us = await _measure(command, emu, total,
                                                      _received(rx, "/sink", total), spy,
                                                      tree, gc_dir)
                            _count_gc(gcs, label, gc_dir, total)
                        results[label].append(rate)
                        cpu[label].append(us)
    finally:
        await rx.close()
    return {"rooms": args.rooms, "messages_per_room": args.messages, "match": args.match,
            "repeat": args.repeat, "events_per_s": {k: v for k, v in results.items() if v},
            "cpu_us_per_event": {k: v for k, v in cpu.items() if v},
            "gc_us_per_event_and_collections": {k: v for k, v in gcs.items() if v}}


@contextlib.contextmanager
def _gc_folder(wanted: bool) -> Iterator[Path | None]:
    if not wanted:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="gcstats-") as folder:
        yield Path(folder)


def _count_gc(gcs: dict[str, list[tuple[float, int, float]]], label: str,
              gc_dir: Path | None, events: int) -> None:
    if gc_dir is not None:
        seconds, collections, peak = _gc_seconds(gc_dir)
        gcs[label].append((seconds * 1e6 / events, collections, peak))


_PY_SPY = str(Path(sys.executable).with_name("py-spy"))
#: label → (state folder, delivery workers, delivery.http_client)
CONTENDERS = {"notifier (disk)": (None, 0, "auto"),
              "notifier (disk, aiohttp)": (None, 0, "aiohttp"),
              "notifier (disk, pyreqwest)": (None, 0, "pyreqwest"),
              "notifier (tmpfs)": ("/dev/shm", 0, "auto"),
              "notifier + 1 worker": (None, 1, "auto")}
_SHORT = {"bare": "bare", "notifier (disk)": "disk", "notifier (disk, aiohttp)": "aiohttp",
          "notifier (disk, pyreqwest)": "pyreqwest",
          "notifier (tmpfs)": "tmpfs", "notifier + 1 worker": "worker"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--match", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--contenders", type=lambda v: set(v.split(",")),
                        default=set(_SHORT.values()))  # "fetch" only when named
    parser.add_argument("--profile", default=None)
    parser.add_argument("--baseline-tree", default=None)
    parser.add_argument("--gc-stats", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    rates = report["events_per_s"]
    bare = statistics.median(rates["bare"]) if "bare" in rates else float("nan")
    print(f"e2e: {args.rooms} rooms x {args.messages} messages, {args.match:.0%} matching, "
          f"median of {args.repeat}")
    # "vs bare" compares the time to get through the same messages: the bare pipeline POSTs
    # every one of them, the notifier only those that match
    print(f"{'contender':<20} {'events/s (median)':>18} {'runs':>28} {'polled msg/s':>13} "
          f"{'vs bare':>8} {'CPU µs/event (main + other threads)':>36}")
    for label, values in rates.items():
        med = statistics.median(values)
        runs = ", ".join(f"{v:,.0f}" for v in values)
        polled = med if label in ("bare", "fetch") else med / args.match
        cpu = report["cpu_us_per_event"][label]
        us = statistics.median(m + r for m, r in cpu)
        main_us = statistics.median(m for m, _ in cpu)
        rest_us = statistics.median(r for _, r in cpu)
        print(f"{label:<20} {med:>18,.0f} {runs:>28} {polled:>13,.0f} {polled / bare:>8.2f} "
              f"{f'{us:,.0f} ({main_us:,.0f} + {rest_us:,.0f})':>36}")
    for label, values in report["gc_us_per_event_and_collections"].items():
        print(f"{label:<20} garbage collector: "
              f"{statistics.median(us for us, _, _ in values):,.1f} µs/event (median), "
              f"collections {', '.join(str(n) for _, n, _ in values)}; "
              f"peak RSS {statistics.median(mb for _, _, mb in values):,.0f} MB (median)")
    name = "e2e" if args.match == 1.0 else f"e2e_match{round(args.match * 100)}"
    out = write_results(name, report)
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
