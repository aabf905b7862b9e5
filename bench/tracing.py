"""What tracing costs the delivery path: absent, disabled and enabled, in one run.

    python bench/tracing.py [--deliveries 3000] [--rounds 5] [--before /path/to/tree]

Each measurement is a fresh process (``--child VARIANT``) that commits N deliveries to a
SQLite outbox, then runs the real Sender (WebhookClient, signing, the outbox, the
completer) until every one has been answered by bench/fast_receiver.py (another
process, verifying each signature); it reports the wall time and this process's CPU
time (every thread: the span exporter's too) from the first claim to the last outcome.

* ``absent``: OpenTelemetry cannot be imported (as without the ``otel`` extra), with an
  OTLP endpoint set: the facade stays off.
* ``disabled``: the extra installed, an endpoint set, ``OTEL_SDK_DISABLED=true``.
* ``enabled``: spans exported over OTLP/HTTP to a sink in this process (it answers
  without decoding, so its cost is not the notifier's); every attempt sampled.
* ``before`` (with ``--before TREE``): the notifier of another source tree (e.g. main
  before tracing existed), imported from TREE.

The variants run in rotation, ``--rounds`` times; the table gives medians and each
median's ratio to ``absent``. Results: bench/results/tracing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = ("absent", "disabled", "enabled")


def _child_env(variant: str, sink: str, before: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink, OTEL_TRACES_SAMPLER="always_on")
    if variant == "disabled":
        env["OTEL_SDK_DISABLED"] = "true"
    if variant == "before" and before:
        env["BENCH_TREE"] = before
    return env


async def _child(variant: str, n: int, port: int) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    if variant == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # as if not installed
    if variant == "before":  # that tree's notifier, not the one installed (editable)
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, os.environ["BENCH_TREE"])
    sys.path.insert(0, str(HERE))
    from _common import config_yaml

    from notifier import __version__
    from notifier.delivery.formats import load_config
    from notifier.delivery.sender import Sender
    from notifier.events import CREATED, Delivery, Event
    from notifier.store import open_store

    try:
        from notifier.util import tracing
    except ImportError:  # the "before" tree has no tracing
        tracing = None  # type: ignore[assignment]
    on = tracing.start(version=__version__) if tracing is not None else False
    assert on == (variant == "enabled"), (variant, on)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "rules.yaml")
        path.write_text(config_yaml("http://127.0.0.1:9", f"http://127.0.0.1:{port}/sink",
                                    ["r"], str(Path(tmp, "state.db"))))
        config = load_config(str(path), env={})
        store = open_store(config.state, instance="bench")
        await store.open()
        now = time.time()
        batch = []
        for i in range(n):
            message = {"id": f"m{i}", "body": f"refund {i}", "createdAt": "2026-11-30T00:00:00Z"}
            event = Event.from_message(CREATED, "r", message, ("bench",), now)
            batch.append(Delivery.for_webhook(event, "sink", ("bench",)))
        await store.commit_page(None, batch, [])
        done = asyncio.Event()
        outcomes = []

        def outcome(o: Any) -> None:
            outcomes.append(o.ok)
            if len(outcomes) == n:
                done.set()

        sender = Sender(config.webhooks, store, on_outcome=outcome)
        stop = asyncio.Event()
        cpu, wall = time.process_time(), time.perf_counter()
        task = asyncio.create_task(sender.run(stop))
        await asyncio.wait_for(done.wait(), 600)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        stop.set()
        sender.poke()
        await task
        await sender.shutdown(1.0)
        await store.close()
    flush = time.perf_counter()
    if tracing is not None:
        tracing.stop()
    return {"variant": variant, "deliveries": n, "ok": sum(outcomes), "wall_s": wall,
            "cpu_s": cpu, "per_s": n / wall, "cpu_us_per_delivery": cpu / n * 1e6,
            "flush_s": time.perf_counter() - flush, "noop_ns": _noop_cost(tracing)}


def _noop_cost(tracing: Any) -> float | None:
    """ns for one attempt span and one headers() call while tracing is off."""
    if tracing is None or tracing._backend is not None:
        return None
    from notifier.events import CREATED, Delivery, Event

    event = Event.from_message(CREATED, "r", {"id": "m", "createdAt": ""}, ("b",), 0.0)
    delivery = Delivery.for_webhook(event, "sink", ("b",))
    rounds = 200_000
    start = time.perf_counter_ns()
    for _ in range(rounds):
        with tracing.attempt(delivery, 1) as span:
            tracing.headers()
            span.answered(200)
    return (time.perf_counter_ns() - start) / rounds


async def _sink() -> tuple[Any, str, list[int]]:
    """An OTLP/HTTP endpoint that accepts and counts, decoding nothing."""
    from aiohttp import web

    sizes: list[int] = []

    async def export(request: web.Request) -> web.Response:
        sizes.append(len(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", export)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}", sizes


async def _main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from _common import SECRET, median, write_results

    receiver = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "fast_receiver.py"), "--secret", SECRET,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert receiver.stdout is not None
    port = int((await receiver.stdout.readline()).split()[1])
    runner, sink, sizes = await _sink()
    variants = [*VARIANTS, *(["before"] if args.before else [])]
    runs: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            for variant in variants[r % len(variants):] + variants[:r % len(variants)]:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, str(Path(__file__)), "--child", variant, "--deliveries",
                    str(args.deliveries), "--port", str(port),
                    env=_child_env(variant, sink, args.before), stdout=asyncio.subprocess.PIPE)
                out, _ = await proc.communicate()
                assert proc.returncode == 0, variant
                runs.append(json.loads(out))
                runs[-1]["round"] = r + 1
                print(f"round {r + 1} {variant:8} {runs[-1]['per_s']:8,.0f}/s "
                      f"{runs[-1]['cpu_us_per_delivery']:6.0f} µs CPU/delivery", flush=True)
    finally:
        receiver.kill()
        await receiver.wait()
        await runner.cleanup()
    table = {}
    for variant in variants:
        mine = [x for x in runs if x["variant"] == variant]
        table[variant] = {"per_s": median(x["per_s"] for x in mine),
                          "cpu_us": median(x["cpu_us_per_delivery"] for x in mine),
                          "noop_ns": median(x["noop_ns"] or 0 for x in mine)}
    base = table["absent"]
    print(f"\n{'variant':10} {'deliveries/s':>13} {'ratio':>6} {'µs CPU each':>12} {'ratio':>6}")
    for variant, row in table.items():
        print(f"{variant:10} {row['per_s']:13,.0f} {row['per_s'] / base['per_s']:6.2f} "
              f"{row['cpu_us']:12.0f} {row['cpu_us'] / base['cpu_us']:6.2f}")
    print(f"no-op attempt span + headers(): {base['noop_ns']:.0f} ns; "
          f"OTLP requests received: {len(sizes)} ({sum(sizes) / 1e6:.1f} MB)")
    out = write_results("tracing", {"runs": runs, "medians": table,
                                    "deliveries": args.deliveries, "rounds": args.rounds})
    print(f"results: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", help="a source tree to measure as the 'before' variant")
    parser.add_argument("--child", choices=[*VARIANTS, "before"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.deliveries, args.port))))
    else:
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
