"""Webhook HTTP clients side by side: requests/s and client CPU per request (issue 16).

    python bench/transport.py [--requests 20000] [--in-flight 64] [--rounds 3] [--ok-body ok]
                              [--contenders aiohttp-raw,pyreqwest-raw,...]

One lean verifying receiver (bench/fast_receiver.py) runs in its own process on
127.0.0.1; each contender runs in a fresh child process on uvloop (``--loop asyncio``
for the default loop), POSTs ``--requests`` signed Standard Webhooks of about 630 bytes
with ``--in-flight`` at a time after a warm-up of 500, and reports its wall time and
its own CPU time (``os.times``: user + system of every thread, so a Rust client's
runtime threads count too). Rounds interleave the contenders; the table gives medians.

Contenders: ``*-raw`` is the library alone (headers built once, nothing signed: the
floor for that library); ``transport-*`` is the notifier's Transport for that library,
formatting and signing each delivery as the sender does. ``base:NAME`` runs contender
NAME from the checkout given by ``--baseline-tree`` (its own bench/transport.py), so two
commits are compared in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._common import SECRET  # noqa: E402

CONTENDERS = ("aiohttp-raw", "pyreqwest-raw", "pyreqwest-streamed", "transport-aiohttp",
              "transport-pyreqwest")
WARMUP = 500


def _deliveries(n: int) -> list:  # type: ignore[type-arg]
    from notifier.events import CREATED, Delivery, Event

    text = "refund for order 4711 please, the parcel never arrived " * 6
    out = []
    for i in range(n):
        message = {"id": f"msg_{i}", "body": text, "createdAt": "2026-11-25T10:00:00Z",
                   "editedAt": "0001-01-01T00:00:00Z"}
        event = Event.from_message(CREATED, "r1", message, ("refunds",), 0.0)
        out.append(Delivery.for_webhook(event, "sink", ("refunds",)))
    return out


async def _drive(post: Callable[[int], Awaitable[None]], n: int, in_flight: int) -> None:
    queue = iter(range(n))

    async def lane() -> None:
        for i in queue:
            await post(i)

    await asyncio.gather(*(lane() for _ in range(in_flight)))


async def _child(name: str, url: str, n: int, in_flight: int) -> dict[str, float]:
    from notifier.config import Webhook
    from notifier.delivery.transport import WebhookClient
    from notifier.signing import decode_secret

    total = n + WARMUP
    deliveries = _deliveries(total)
    hook = Webhook("sink", url=url, secrets=(decode_secret(SECRET),), allow_private_urls=True,
                   max_in_flight=in_flight, timeout=30)
    body = b'{"id":"msg_1","text":"' + b"x" * 600 + b'"}'
    headers = {"content-type": "application/json", "webhook-id": "msg_1",
               "webhook-timestamp": "1", "webhook-signature": "v1,xx"}
    close: Callable[[], Awaitable[None]]
    if name == "aiohttp-raw":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight))

        async def post(i: int) -> None:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                assert resp.status < 500, resp.status
        close = session.close
    elif name == "pyreqwest-raw":
        from pyreqwest.client import ClientBuilder

        client = ClientBuilder().max_connections(in_flight).build()

        async def post(i: int) -> None:
            resp = await client.post(url).headers(headers).body_bytes(body).build().send()
            await resp.bytes()
            assert resp.status < 500, resp.status
        close = client.close
    elif name == "pyreqwest-streamed":  # as the transport reads: at most 8 KiB, streamed
        from pyreqwest.client import ClientBuilder

        client = ClientBuilder().max_connections(in_flight).build()

        async def post(i: int) -> None:
            request = client.post(url).headers(headers).body_bytes(body)
            async with request.build_streamed() as resp:
                await resp.body_reader.read(8192)
                assert resp.status < 500, resp.status
        close = client.close
    else:
        if name == "transport-aiohttp":
            transport = WebhookClient(hook)
        else:
            from notifier.delivery.transport_reqwest import ReqwestTransport
            transport = ReqwestTransport(hook)

        async def post(i: int) -> None:
            await transport.post(deliveries[i])
        close = transport.close
    await _drive(post, WARMUP, in_flight)
    cpu0, t0 = _cpu(), time.perf_counter()
    await _drive(lambda i: post(WARMUP + i), n, in_flight)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    await close()
    return {"wall": wall, "cpu": cpu}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _run_child(name: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    script = __file__
    if name.startswith("base:"):
        script, name = str(Path(args.baseline_tree, "bench", "transport.py")), name[5:]
    out = subprocess.run(
        [sys.executable, script, "--child", name, "--url", url, "--loop", args.loop,
         "--requests", str(args.requests), "--in-flight", str(args.in_flight)],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _parent(args: argparse.Namespace) -> None:
    answer = [] if args.ok_body is None else ["--ok-body", args.ok_body]
    rx = subprocess.Popen([sys.executable, str(HERE / "fast_receiver.py"), "--secret", SECRET,
                           *answer],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None
    port = int(rx.stdout.readline().split()[1])
    url = f"http://127.0.0.1:{port}/sink"
    names = args.contenders.split(",")
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    try:
        for r in range(args.rounds):
            for name in names:
                result = _run_child(name, url, args)
                runs[name].append(result)
                print(f"round {r + 1} {name}: {args.requests / result['wall']:,.0f} req/s, "
                      f"{result['cpu'] / args.requests * 1e6:.0f} us CPU/request", flush=True)
    finally:
        rx.terminate()
        rx.wait()
    _table(runs, args, names[0])


def _table(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace,
           base: str) -> None:
    rate = {n: statistics.median(args.requests / r["wall"] for r in rs)
            for n, rs in runs.items()}
    cpu = {n: statistics.median(r["cpu"] / args.requests * 1e6 for r in rs)
           for n, rs in runs.items()}
    print(f"\n{args.requests} POSTs, {args.in_flight} in flight, loop {args.loop}, "
          f"median of {args.rounds} interleaved rounds; os.cpu_count()={os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"| client | requests/s | vs {base} | client CPU per request |")
    print("|---|---|---|---|")
    for n in runs:
        print(f"| {n} | {rate[n]:,.0f} | {rate[n] / rate[base]:.2f} | {cpu[n]:.0f} us |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--contenders", default="aiohttp-raw,pyreqwest-raw,transport-aiohttp")
    parser.add_argument("--ok-body", help="the receiver answers 200 with this body, not 204")
    parser.add_argument("--baseline-tree", help="checkout the base:NAME contenders run from")
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child is None:
        _parent(args)
        return
    coro = _child(args.child, args.url, args.requests, args.in_flight)
    if args.loop == "uvloop":
        import uvloop
        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
