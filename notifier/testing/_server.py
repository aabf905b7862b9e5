"""A small aiohttp server on a local port, shared by the emulator and the receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

__all__ = ["Changes", "LocalServer"]


class LocalServer:
    """Runs one aiohttp application on ``host`` (a free port when ``port`` is 0)."""

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.closing = asyncio.Event()
        """Set when the server starts to stop, so slow handlers can give up at once."""

    async def start(self) -> str:
        """Start serving; return ``http://host:port``."""
        if self._runner is not None:
            raise RuntimeError("server already started")
        self.closing.clear()
        # handler_cancellation: a handler waiting out a delay learns at once that the
        # client hung up; a short shutdown_timeout keeps test teardown fast.
        runner = web.AppRunner(self._app, handler_cancellation=True, shutdown_timeout=0.5,
                               access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self.closing.set()
            await runner.cleanup()


class Changes:
    """Wake waiters whenever something was recorded; notifying never blocks or yields."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every current waiter so it re-checks its predicate."""
        self._event.set()
        self._event = asyncio.Event()

    # ASYNC109 ignored: a test helper whose timeout is part of its contract.
    async def wait_for(self, predicate: Callable[[], bool], timeout: float,
                       describe: Callable[[], str]) -> None:
        """Return once ``predicate()`` holds; TimeoutError naming ``describe()`` otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition still false after {timeout}s: {describe()}")
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                continue
