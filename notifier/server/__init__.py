"""The ops listener (``server:`` in rules.yaml): metrics, health, the status page.

The pipeline knows nothing of Prometheus or HTTP: it reports through ``ServiceHooks``, and
``Listener.hooks`` hands those reports to the metrics and the status board.
``notifier.runtime.run`` starts the listener beside the service when the config asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from notifier.config import Config, ServerSettings
from notifier.runtime.hooks import ServiceHooks, fan_out
from notifier.runtime.logs import config_secrets
from notifier.runtime.service import Service
from notifier.server.app import ListenerState, make_app
from notifier.server.board import Board
from notifier.server.history import History
from notifier.server.metrics import Metrics
from notifier.util.redaction import Redactor

__all__ = ["Listener"]

log = logging.getLogger("notifier.server")


class Listener:
    """The metrics and the status board of one service, and the listener serving them."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        rooms = [room.name for room in config.rooms]
        limit = (config.server or ServerSettings()).room_metrics_limit
        self.config = config
        self.metrics = Metrics(rooms, config.webhooks, room_limit=limit, clock=clock)
        self.board = Board(rooms, config.webhooks, clock=clock)
        self.history = History(rooms, config.webhooks, room_limit=limit, clock=clock)
        self.url = ""
        """The listener's base URL once it listens (the real port when 0 was asked)."""

    def hooks(self, base: ServiceHooks | None = None) -> ServiceHooks:
        """Hooks that feed the metrics and the board, then call ``base``'s."""
        m, b, h = self.metrics, self.board, self.history
        metrics = ServiceHooks(
            on_outcome=m.on_outcome, on_poll=m.on_poll, on_poll_failed=m.on_poll_failed,
            on_read=m.on_read, on_api_error=m.on_api_error, on_enqueued=m.on_enqueued,
            on_quarantined=m.on_quarantined, on_attempt=m.on_attempt)
        board = ServiceHooks(on_outcome=b.on_outcome, on_poll=b.on_poll,
                             on_poll_failed=b.on_poll_failed, on_attempt=b.on_attempt)
        history = ServiceHooks(on_outcome=h.on_outcome, on_poll=h.on_poll,
                               on_poll_failed=h.on_poll_failed, on_attempt=h.on_attempt)
        return fan_out(metrics, board, history, base)

    @contextlib.asynccontextmanager
    async def listening(self, service: Service, stop: asyncio.Event) -> AsyncIterator[str]:
        """Serve the listener for the body of the block; yield its base URL."""
        server = self.config.server
        assert server is not None, "listening() needs a server: section"
        redactor = Redactor(config_secrets(self.config))
        app = make_app(ListenerState(service, self.board, self.metrics, stop, redactor,
                                     self.history))
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, server.host, server.port)
            await site.start()
            port = runner.addresses[0][1]
            host = f"[{server.host}]" if ":" in server.host else server.host
            self.url = f"http://{host}:{port}"
            names = ", ".join(server.allowed_hosts)
            log.info("ops listener on %s (metrics, health, status page)%s", self.url,
                     f"; also answers the host names {names}" if names else "")
            yield self.url
        finally:
            await runner.cleanup()
