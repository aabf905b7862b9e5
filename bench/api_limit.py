"""An API key with a rate limit (issue 17, item 2): attempts, refusals, warnings.

    python bench/api_limit.py [--rooms 1000,10000] [--limit 50] [--budget 40]
                              [--warmup 30] [--seconds 30] [--baseline main]
                              [--instances 1] [--ceiling 60]

The emulator refuses each API key's requests beyond ``--limit`` a second (a token bucket
with a burst of one second's worth) with 429 and ``Retry-After: 1``. The notifier polls
every room at a fixed ``--poll`` (5 s by default, so 1,000 rooms ask for 200 requests a
second: four times the limit; ``--ceiling`` makes it adaptive up to that), with no
``max_requests_per_second`` ("no budget") and with ``--budget`` below the limit. Each
case runs this tree and, in the same run, the ``--baseline`` git ref (extracted with
``git archive`` and put first on PYTHONPATH), one after the other; ``--instances N``
runs N processes on the one key, the rooms split among them (each with its own state),
as a cluster sharing a key would. Measured after ``--warmup`` seconds, over
``--seconds``: attempts a second at the emulator (refused ones included) and as a
multiple of the limit, the share refused, requests served a second (and by each
instance), the WARNING lines the notifier logged over the whole run, and the share
refused in each 10 s of the run (how it settles).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, HERE, SECRET, config_yaml, write_results

from notifier.testing import KeyLimit, RoomlioEmulator, WebhookReceiver


def extract(ref: str, into: Path) -> Path:
    """The ``notifier`` package of git ref ``ref``, unpacked under ``into``."""
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", ref, "notifier"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


async def start(config: Path, log: Path, tree: Path | None) -> asyncio.subprocess.Process:
    """``notifier run`` of this tree (``tree`` None) or of the package under ``tree``."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")])
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", "run", "--config", str(config), "--log-level",
            "WARNING", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=out, env=env, cwd=config.parent)  # not ours: -m puts the cwd first


async def measure(n_rooms: int, tree: str, budget: int | None, base: Path | None,
                  args: argparse.Namespace) -> dict[str, object]:
    """One case: ``args.instances`` processes share the key, each with its part of the
    rooms and its own state file."""
    rooms = [f"room-{i}" for i in range(n_rooms)]
    extra: dict[str, object] = {"poll_interval": f"{args.poll}s",
                                "max_poll_interval": f"{args.ceiling or args.poll}s"}
    if budget:
        extra["max_requests_per_second"] = budget
    limit = KeyLimit(args.limit, retry_after=1)
    async with RoomlioEmulator(api_key=API_KEY, rate_limit=limit) as emu, \
            WebhookReceiver({"/sink": SECRET}) as rx:
        for room in rooms:
            emu.add_room(key=room)
        with tempfile.TemporaryDirectory() as tmp:
            procs, logs = [], []
            for i in range(args.instances):
                path, log = Path(tmp, f"rules{i}.yaml"), Path(tmp, f"notifier{i}.log")
                path.write_text(config_yaml(emu.url, rx.url_for("/sink"),
                                            rooms[i::args.instances],
                                            str(Path(tmp, f"state{i}.db")), **extra))
                logs.append(log)
                procs.append(await start(path, log, base if tree != "this" else None))
            try:
                started = time.monotonic()
                await asyncio.sleep(args.warmup)
                first = len(emu.requests)
                await asyncio.sleep(args.seconds)
                last = len(emu.requests)
            finally:
                for proc in procs:
                    proc.terminate()
                    await proc.wait()
            warnings = [line for log in logs
                        for line in log.read_text(errors="replace").splitlines()
                        if "WARNING" in line]
    window = emu.requests[first:last]
    refused = sum(1 for r in window if r.status == 429)
    attempts = len(window) / args.seconds
    served = Counter(r.instance for r in window if r.status != 429)
    return {"rooms": n_rooms, "tree": tree, "budget": budget, "limit": args.limit,
            "instances": args.instances, "demand_per_s": n_rooms / args.poll,
            "attempts_per_s": attempts, "attempts_vs_limit": attempts / args.limit,
            "refused_share": refused / len(window) if window else float("nan"),
            "served_per_s": (len(window) - refused) / args.seconds,
            "served_per_s_by_instance": sorted(n / args.seconds for n in served.values()),
            "warning_lines": len(warnings), "first_warning": warnings[0][:160] if warnings else "",
            "refused_share_per_10s": _shares(emu.requests, started)}


def _shares(requests: list[object], started: float) -> list[float]:
    """The share of requests refused in each 10 s since ``started``."""
    buckets: dict[int, list[int]] = {}
    for r in requests:
        slot = buckets.setdefault(int((r.time - started) // 10), [0, 0])  # type: ignore[attr-defined]
        slot[0] += 1
        slot[1] += r.status == 429  # type: ignore[attr-defined]
    return [round(refused / total, 3) for _, (total, refused) in sorted(buckets.items())
            if total]


def _print(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    polling = (f"adaptive polling {args.poll:g}s to {args.ceiling:g}s" if args.ceiling
               else f"fixed polling every {args.poll:g}s")
    print(f"API limit {args.limit:g}/s per key (429, Retry-After: 1); {polling}; measured "
          f"{args.seconds:g}s after {args.warmup:g}s")
    head = ("rooms", "tree", "budget", "demand/s", "attempts/s", "x limit", "refused",
            "served/s", "warnings")
    print(" ".join(f"{h:>10}" for h in head))
    for r in rows:
        cells = [r["rooms"], r["tree"], r["budget"] or "none", f"{r['demand_per_s']:.0f}",
                 f"{r['attempts_per_s']:.1f}", f"{r['attempts_vs_limit']:.2f}",
                 f"{100 * float(str(r['refused_share'])):.1f}%", f"{r['served_per_s']:.1f}",
                 r["warning_lines"]]
        print(" ".join(f"{c!s:>10}" for c in cells))
        print(f"{'':>10} refused per 10 s: {r['refused_share_per_10s']}")
        if args.instances > 1:
            shares = " / ".join(f"{v:.1f}" for v in r["served_per_s_by_instance"])  # type: ignore[attr-defined]
            print(f"{'':>10} served a second by each of {args.instances} instances: {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", default="1000")
    parser.add_argument("--limit", type=float, default=50)
    parser.add_argument("--budget", type=int, default=40, help="0 skips the budget cases")
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--ceiling", type=float, default=0,
                        help="max_poll_interval for adaptive polling (0: fixed at --poll)")
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--baseline", default="main", help="git ref; '' skips it")
    parser.add_argument("--instances", type=int, default=1,
                        help="notifier processes sharing the key (the rooms split among them)")
    args = parser.parse_args()
    trees = ["this", *([args.baseline] if args.baseline else [])]
    budgets = [None, *([args.budget] if args.budget else [])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = extract(args.baseline, Path(tmp)) if args.baseline else None
        for n in (int(n) for n in args.rooms.split(",") if n):
            for budget in budgets:
                for tree in trees:
                    rows.append(asyncio.run(measure(n, tree, budget, base, args)))
                    print(rows[-1], flush=True)
    _print(rows, args)
    name = "api_limit" + "".join(f"_{n}" for n in args.rooms.split(",") if n != "1000")
    name += f"_x{args.instances}" if args.instances > 1 else ""
    name += f"_adaptive{args.ceiling:g}" if args.ceiling else ""
    out = write_results(name, {"limit": args.limit, "poll": args.poll,
                               "baseline": args.baseline, "rows": rows})
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
