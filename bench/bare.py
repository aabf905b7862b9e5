"""The baseline pipeline: fetch pages → sign → POST, concurrency 64, no rules, no state.

Run by bench/e2e.py as a subprocess, exactly like `notifier run`, so both pay the same
process start-up and share the machine the same way.

``--fetch-only``: fetch and decode every page (orjson when installed) and POST nothing,
then print ``fetched <time.monotonic()>``: how fast the emulator serves, the ceiling of
any polled messages/s measured against it on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from notifier.signing import Signer, decode_secret
from notifier.util.json import loads


async def _pages(session: aiohttp.ClientSession, args: argparse.Namespace, room: str,
                 decode: Callable[[bytes], Any]) -> AsyncIterator[dict]:
    """Every page of ``room``, read by cursor and decoded by ``decode``."""
    cursor = None
    headers = {"Authorization": f"Bearer {args.api_key}"}
    while True:
        params = {"roomKey": room, "limit": args.page_size}
        if cursor:
            params["startCursor"] = cursor
        async with session.post(f"{args.url}/RoomHistory", json=params, headers=headers) as r:
            page = decode(await r.read())
        yield page
        if not page["hasMore"]:
            return
        cursor = page["nextCursor"]


async def _room(session: aiohttp.ClientSession, args: argparse.Namespace, room: str,
                queue: asyncio.Queue[dict | None]) -> None:
    async for page in _pages(session, args, room, json.loads):
        for message in page["messages"]:
            await queue.put(message)


async def _sender(session: aiohttp.ClientSession, key: bytes, target: str,
                  queue: asyncio.Queue[dict | None]) -> None:
    signer = Signer([key])  # the key prepared once, as the notifier's transport does
    while (message := await queue.get()) is not None:
        body = json.dumps({"type": "message.created", "data": {"message": message}}).encode()
        headers = {"content-type": "application/json",
                   **signer.headers("msg_" + message["id"], int(time.time()), body)}
        async with session.post(target, data=body, headers=headers) as resp:
            await resp.read()


async def _fetch_only(args: argparse.Namespace) -> None:
    async def room(session: aiohttp.ClientSession, key: str) -> None:
        async for _page in _pages(session, args, key, loads):
            pass

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(room(session, r) for r in args.rooms.split(",")))
    print(f"fetched {time.monotonic()}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--url", "--api-key", "--secret", "--target", "--rooms"):
        parser.add_argument(name, required=True)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--fetch-only", action="store_true")
    args = parser.parse_args()
    if args.fetch_only:
        await _fetch_only(args)
        return
    key = decode_secret(args.secret)
    queue: asyncio.Queue[dict | None] = asyncio.Queue(maxsize=10_000)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        senders = [asyncio.create_task(_sender(session, key, args.target, queue))
                   for _ in range(args.concurrency)]
        await asyncio.gather(*(_room(session, args, r, queue) for r in args.rooms.split(",")))
        for _ in senders:
            await queue.put(None)
        await asyncio.gather(*senders)


if __name__ == "__main__":
    asyncio.run(main())
