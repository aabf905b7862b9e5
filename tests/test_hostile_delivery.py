"""Hostile receivers: endless answers, malformed answers, answers that echo the webhook's
URL. The notifier reads a bounded prefix of any answer, keeps the right outcome, and no
URL token reaches the state file, the logs or `dlq list` (issue 13, items 7 and 8)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from notifier.config import Webhook
from notifier.delivery.errortext import MAX_ERROR_TEXT, Scrubber
from notifier.delivery.transport import TransportFactory
from notifier.errors import DeliveryTransientError
from notifier.testing import RoomlioEmulator
from notifier.testing._server import LocalServer
from tests.chaos import write_config
from tests.conftest import API_KEY, TEST_ENV, notifier_command
from tests.test_ssrf import a_delivery

HUGE = 256 * 1024 * 1024
"""The body an endless receiver offers: far more than the notifier may ever hold."""
_CHUNK = b"x" * 65536
TOKEN_PATH = "/hooks/T0/B0/secrettoken%2Fx"
"""A Slack-style path token with a %2F, which aiohttp's texts would print as '/'."""
TOKEN_SPELLINGS = ("secrettoken", "secrettoken%2Fx", "secrettoken/x", "secrettoken%2fx")


class Hostile:
    """A receiver on 127.0.0.1 that answers every request with ``status`` and a body that
    is endless (generated lazily, chunked) or echoes the request's URL in every spelling."""

    def __init__(self, status: int, *, endless: bool = False) -> None:
        self.status, self.endless = status, endless
        self.requests = 0
        self.sent = 0
        """Body bytes the receiver managed to hand to the socket (all requests)."""
        self.requested = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = LocalServer(app)
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests += 1
        self.requested.set()
        if not self.endless:
            echo = f"no hook at {request.url} (path {request.path}, raw {request.raw_path})"
            return web.Response(status=self.status, text=echo)
        response = web.StreamResponse(status=self.status)
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # the notifier hung up: as it should
            for _ in range(HUGE // len(_CHUNK)):
                await response.write(_CHUNK)
                self.sent += len(_CHUNK)
        return response

    async def __aenter__(self) -> Hostile:
        self.url = await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop()


async def _post_traced(make: TransportFactory, url: str) -> tuple[int | Exception, int]:
    """POST once; the status (or the error) and the peak of Python memory meanwhile."""
    client = make(Webhook("crm", url=url, allow_private_urls=True, timeout=30))
    tracemalloc.start()
    try:
        result: int | Exception = await client.post(a_delivery())
    except DeliveryTransientError as exc:
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        await client.close()
    return result, peak


@pytest.mark.parametrize("status", [200, 500])
async def test_an_endless_answer_is_cut_off_after_a_small_prefix(status, transport_cls):
    """256 MB offered: the client reads a few KiB, hangs up, and its memory peak stays
    small; a 2xx is delivered, a 500 is retried with a short error text."""
    async with Hostile(status, endless=True) as rx:
        result, peak = await _post_traced(transport_cls, rx.url + "/crm")
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB while reading one answer"
    assert rx.sent < 32 * 1024 * 1024, f"the answer was drained ({rx.sent / 2**20:.0f} MiB)"
    if status == 200:
        assert result == 200
    else:
        assert isinstance(result, DeliveryTransientError) and result.status == 500
        assert str(result).startswith("HTTP 500 Internal Server Error: xxxx")
        assert len(str(result)) <= MAX_ERROR_TEXT


async def test_a_compressed_answer_that_inflates_to_256_mb_stays_small(transport_cls):
    """A gzip bomb (256 MiB of zeros in 256 KiB) answering 500: decoded no further than
    the prefix the error text needs."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(b"\0" * (1 << 20)) for _ in range(256)) + packer.flush()

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, body=bomb, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = LocalServer(app)
    try:
        result, peak = await _post_traced(transport_cls, await server.start() + "/crm")
    finally:
        await server.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB while reading one answer"
    assert isinstance(result, DeliveryTransientError) and result.status == 500
    assert len(str(result)) <= MAX_ERROR_TEXT


@contextlib.asynccontextmanager
async def answering(status: int, body: Callable[[str], str]) -> AsyncIterator[str]:
    """A receiver answering ``status`` with ``body(the request's URL)``; yields its URL."""
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, text=body(str(request.url)))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = LocalServer(app)
    try:
        yield await server.start()
    finally:
        await server.stop()


async def _error_for(make: TransportFactory, base: str, path: str) -> str:
    client = make(Webhook("crm", url=base + path, allow_private_urls=True, timeout=5))
    try:
        with pytest.raises(DeliveryTransientError) as info:
            await client.post(a_delivery())
    finally:
        await client.close()
    return str(info.value)


@pytest.mark.parametrize("offset", range(100, 320, 5))
async def test_an_echoed_url_is_scrubbed_before_the_text_is_cut(offset, transport_cls):
    """Wherever the echo sits across the 300-character cut, no part of the token shows."""
    async with answering(500, lambda url: "a" * offset + url + " b" * 200) as base:
        error = await _error_for(transport_cls, base, TOKEN_PATH)
    assert len(error) <= MAX_ERROR_TEXT
    assert "secr" not in error and "T0/B0" not in error, error


async def test_a_token_cut_by_the_read_limit_is_dropped_not_shown(transport_cls):
    """An echo of a long token repeated past the 8 KiB read limit shrinks when scrubbed,
    bringing the cut end into view: the half token there is dropped too."""
    long_path = "/hooks/" + "tok" * 300  # 8 copies fit in 8 KiB: the cut end shows
    async with answering(500, lambda url: " ".join([url] * 40)) as base:
        error = await _error_for(transport_cls, base, long_path)
    assert "[webhooks.crm.url]" in error
    assert "toktok" not in error, error


def _free_port() -> int:
    """A port nothing listens on (bound, then closed): connections to it are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def garbage_server() -> AsyncIterator[str]:
    """Answers every request with a status line no HTTP client accepts."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 abc\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def _cli(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *notifier_command(*args), env={**os.environ, **TEST_ENV},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode()


async def _until_dead(path: Path, count: int,
                      timeout: float = 30) -> tuple[list[dict[str, Any]], str]:
    """`dlq list --json` once it lists ``count`` dead letters: the rows and the output."""
    async with asyncio.timeout(timeout):
        while True:
            out = await _cli("dlq", "list", "--json", "--config", str(path))
            letters = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            if len(letters) >= count:
                return letters, out
            await asyncio.sleep(0.2)  # polling a CLI: there is no event to await


@contextlib.asynccontextmanager
async def notifier_run(path: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`notifier run` at DEBUG, its stderr in ``log``; stopped with SIGTERM afterwards."""
    with log.open("ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *notifier_command("run", "--config", str(path), "--log-level", "DEBUG"),
            env={**os.environ, **TEST_ENV}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


async def test_notifier_run_stays_small_against_endless_answers(tmp_path):
    """`notifier run`, one 2xx and one 500 receiver each offering 256 MB per answer: the
    2xx delivery is delivered once, the 500 one is dead-lettered after its attempts, and
    the process's peak RSS stays far below one answer's size."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            Hostile(200, endless=True) as ok, Hostile(500, endless=True) as failing:
        emu.add_room(key="r1")
        webhooks = {"crm": {"url": ok.url + "/crm"}, "mod": {"url": failing.url + "/mod"}}
        path = write_config(tmp_path, emu.url, ok.url, rooms=["r1"], load=False,
                            webhooks=webhooks, delivery={"max_attempts": 3})
        assert isinstance(path, Path)
        emu.post("r1", "urgent refund please")
        async with notifier_run(path, tmp_path / "stderr.log") as proc:
            letters, _ = await _until_dead(path, 1)
            peak = _peak_rss_mib(proc.pid)
    assert [(d["webhook"], d["attempts"], d["last_status"]) for d in letters] == [
        ("mod", 3, 500)]
    assert letters[0]["last_error"].startswith("HTTP 500 Internal Server Error")
    assert len(letters[0]["last_error"]) <= MAX_ERROR_TEXT
    assert (ok.requests, failing.requests) == (1, 3)
    assert peak < 120, f"notifier run peaked at {peak:.0f} MiB"  # 56 MiB here; 822 on main
    assert ok.sent + failing.sent < 4 * 32 * 1024 * 1024


async def test_no_url_token_reaches_the_state_file_logs_or_dlq_output(tmp_path, http_client):
    """Token-bearing URLs against a refused port, a receiver whose status line is garbage
    (aiohttp's error text holds the URL) and a 500 that echoes the URL: the state file,
    the logs, `dlq list` and `dlq list --json` hold no spelling of the token."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, Hostile(500) as echo, \
            garbage_server() as garbage:
        emu.add_room(key="r1")
        webhooks = {name: {"url": base + TOKEN_PATH} for name, base in (
            ("crm", garbage), ("mod", echo.url),
            ("gone", f"http://127.0.0.1:{_free_port()}"))}
        rules = [{"name": "refunds", "keywords": ["refund"], "notify": list(webhooks)}]
        path = write_config(tmp_path, emu.url, echo.url, rooms=["r1"], load=False,
                            webhooks=webhooks, rules=rules,
                            delivery={"max_attempts": 2, "http_client": http_client})
        assert isinstance(path, Path)
        emu.post("r1", "refund please")
        log = tmp_path / "stderr.log"
        async with notifier_run(path, log):
            letters, listed = await _until_dead(path, 3)
        table = await _cli("dlq", "list", "--config", str(path))
    shown = {
        "the state file": b"".join(p.read_bytes() for p in tmp_path.glob("state.db*")),
        "the logs": log.read_bytes(),
        "dlq list --json": listed.encode(),
        "dlq list": table.encode(),
    }
    for where, text in shown.items():
        for spelling in TOKEN_SPELLINGS:
            assert spelling.encode() not in text, f"{where} shows {spelling}"
    assert shown["the logs"].count(b"dead-lettered") == 3  # the logs did hold the errors
    assert sorted(d["webhook"] for d in letters) == ["crm", "gone", "mod"]
    errors = {d["webhook"]: d["last_error"] for d in letters}
    assert errors["gone"].startswith("cannot connect to 127.0.0.1:")
    assert errors["crm"].startswith("malformed answer")
    assert errors["mod"].startswith("HTTP 500 Internal Server Error: no hook at")
    assert "[webhooks.mod.url]" in errors["mod"]  # the echo was there, and scrubbed


async def test_dlq_list_scrubs_error_texts_stored_by_an_older_version(tmp_path):
    """A dead letter whose stored text holds the URL (as main stored aiohttp's texts, with
    %2F decoded) is printed by `dlq list` and `dlq list --json` without the token."""
    async with RoomlioEmulator(api_key=API_KEY) as emu:
        emu.add_room(key="r1")
        gone = f"http://127.0.0.1:{_free_port()}"
        rules = [{"name": "refunds", "keywords": ["refund"], "notify": ["crm"]}]
        path = write_config(tmp_path, emu.url, gone, rooms=["r1"], load=False, rules=rules,
                            webhooks={"crm": {"url": gone + TOKEN_PATH}},
                            delivery={"max_attempts": 1})
        assert isinstance(path, Path)
        emu.post("r1", "refund please")
        async with notifier_run(path, tmp_path / "stderr.log"):
            await _until_dead(path, 1)
    old_text = (f"ClientResponseError: 400, message='Bad status line', "
                f"url='{gone}/hooks/T0/B0/secrettoken/x' (was {gone}{TOKEN_PATH})")
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert db.execute("UPDATE dead_letters SET last_error = ?", (old_text,)).rowcount == 1
    letters, listed = await _until_dead(path, 1)
    table = await _cli("dlq", "list", "--config", str(path))
    for where, text in (("dlq list --json", listed), ("dlq list", table)):
        for spelling in TOKEN_SPELLINGS:
            assert spelling not in text, f"{where} shows {spelling}"
    assert letters[0]["last_error"].startswith("ClientResponseError: 400")


SCRUBBED = Webhook("crm", url="https://user:passw0rd@hooks.example.com/services/T0/"
                              "B0/tok%2Fen99?sig=abc%2Bdef123&v=1",
                   secrets=(b"k" * 32,), headers={"Authorization": "Bearer headertok123"})


@pytest.mark.parametrize(("spelling", "name"), [
    ("https://user:passw0rd@hooks.example.com/services/T0/B0/tok%2Fen99?sig=abc%2Bdef123&v=1",
     "webhooks.crm.url"),
    ("HTTPS://USER:PASSW0RD@HOOKS.EXAMPLE.COM/services/T0/B0/tok/en99?sig=abc+def123&v=1",
     "webhooks.crm.url"),
    ("/services/T0/B0/tok/en99", "webhooks.crm.url"),
    ("tok%2fen99", "webhooks.crm.url"),
    ("abc+def123", "webhooks.crm.url"),
    ("passw0rd", "webhooks.crm.url"),
    ("a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=", "webhooks.crm.secret"),
    ("a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s", "webhooks.crm.secret"),
    ("headertok123", "webhooks.crm.headers.Authorization"),
])
def test_the_scrubber_knows_every_spelling_of_a_webhooks_secrets(spelling, name):
    """Configured, percent-decoded, upper-cased, partial: each is replaced by its name."""
    text = Scrubber([SCRUBBED])(f"failed: {spelling} (again)\n")
    assert text == f"failed: [{name}] (again)\\n"  # and control characters escaped
