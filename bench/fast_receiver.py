"""A lean verifying webhook receiver for the throughput benchmarks, in its own process.

    python bench/fast_receiver.py --secret whsec_... [--port 0] [--ok-body ok]

The test suite's WebhookReceiver (aiohttp, records every request) costs about as much
CPU per request as the notifier's own POST, so with it the benchmark measured the
receiver as much as the sender. This one is an asyncio protocol that parses just enough
HTTP/1.1 (request line, headers, Content-Length body, keep-alive, pipelining), verifies
the Standard Webhooks HMAC signature of every request (`hmac.digest`), and answers 204
(401 when the signature does not verify); with ``--ok-body TEXT``, 200 and that body, as
Slack ("ok") and many receivers do. It runs under uvloop when installed.

Control, line by line on stdin/stdout: it prints ``ready <port>``; then for each
``expect <path> <n>`` it counts distinct webhook-ids POSTed to ``<path>`` from then on
and prints ``done <path> <n> <last arrival> <duplicates> <bad signatures>`` when the n-th
distinct one arrives (the arrival in ``time.monotonic()``, one clock for every process on
Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import sys
import time
from dataclasses import dataclass, field

_OK = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"


@dataclass
class _Target:
    path: bytes
    expected: int
    seen: set[bytes] = field(default_factory=set)
    duplicates: int = 0
    bad: int = 0


class _Counts:
    def __init__(self, key: bytes) -> None:
        self.key = key
        self.target: _Target | None = None

    def record(self, path: bytes, headers: dict[bytes, bytes], body: bytes) -> bool:
        msg_id = headers.get(b"webhook-id", b"")
        content = b"%s.%s.%s" % (msg_id, headers.get(b"webhook-timestamp", b""), body)
        expected = b"v1," + base64.b64encode(hmac.digest(self.key, content, hashlib.sha256))
        ok = any(hmac.compare_digest(expected, sig)
                 for sig in headers.get(b"webhook-signature", b"").split())
        target = self.target
        if target is None or target.path != path:
            return ok
        if not ok:
            target.bad += 1
        elif msg_id in target.seen:
            target.duplicates += 1
        else:
            target.seen.add(msg_id)
            if len(target.seen) == target.expected:
                print(f"done {path.decode()} {target.expected} {time.monotonic():.6f} "
                      f"{target.duplicates} {target.bad}", flush=True)
                self.target = None
        return ok


class _Connection(asyncio.Protocol):
    def __init__(self, counts: _Counts, ok: bytes = _OK) -> None:
        self._counts = counts
        self._ok = ok
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (request := self._take()) is not None:
            path, headers, body = request
            ok = self._counts.record(path, headers, body)
            assert self._transport is not None
            self._transport.write(self._ok if ok else _BAD)

    def _take(self) -> tuple[bytes, dict[bytes, bytes], bytes] | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = self._buffer[:end].split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        if len(self._buffer) < end + 4 + length:
            return None
        body = self._buffer[end + 4:end + 4 + length]
        self._buffer = self._buffer[end + 4 + length:]
        return lines[0].split(b" ")[1], headers, body


async def _control(counts: _Counts) -> None:
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        verb, path, n = line.split()
        if verb == "expect":
            counts.target = _Target(path.encode(), int(n))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ok-body", help="answer 200 with this body instead of 204")
    args = parser.parse_args()
    counts = _Counts(base64.b64decode(args.secret.removeprefix("whsec_")))
    ok = _OK
    if args.ok_body is not None:
        body = args.ok_body.encode()
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(counts, ok), "127.0.0.1", args.port,
                                      backlog=1024)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await _control(counts)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
