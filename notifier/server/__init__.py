"""The ops listener (``server:`` in rules.yaml): metrics, health, the status page.

``run_service`` runs a Service with the listener beside it when the config asks for
one. The pipeline knows nothing of Prometheus or HTTP: it reports through
``ServiceHooks``, which ``Ops.hooks`` fans out to the metrics and the status board.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import fields
from typing import Any

from aiohttp import web

from notifier.config import Config, ServerSettings
from notifier.runtime.logs import RedactionFilter, config_secrets
from notifier.runtime.service import Service, ServiceHooks
from notifier.server.app import OpsState, make_app
from notifier.server.board import Board
from notifier.server.metrics import Metrics

__all__ = ["Ops", "run_service"]

log = logging.getLogger("notifier.server")


class Ops:
    """The metrics and the status board of one service, and the listener serving them."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        rooms = [room.name for room in config.rooms]
        limit = (config.server or ServerSettings()).room_metrics_limit
        self.config = config
        self.metrics = Metrics(rooms, config.webhooks, room_limit=limit, clock=clock)
        self.board = Board(rooms, config.webhooks, clock=clock)
        self.url = ""
        """The listener's base URL once it listens (the real port when 0 was asked)."""

    def hooks(self, base: ServiceHooks | None = None) -> ServiceHooks:
        """Hooks that feed the metrics and the board, then call ``base``'s."""
        merged: dict[str, Any] = {}
        for f in fields(ServiceHooks):
            targets = [getattr(t, f.name, None) for t in (self.metrics, self.board, base)]
            merged[f.name] = _fan_out([t for t in targets if t is not None])
        return ServiceHooks(**merged)

    @contextlib.asynccontextmanager
    async def listening(self, service: Service, stop: asyncio.Event) -> AsyncIterator[str]:
        """Serve the listener for the body of the block; yield its base URL."""
        server = self.config.server
        assert server is not None, "listening() needs a server: section"
        redactor = RedactionFilter(config_secrets(self.config))
        app = make_app(OpsState(service, self.board, self.metrics, stop, redactor))
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


def _fan_out(targets: list[Callable[..., None]]) -> Callable[..., None] | None:
    if not targets:
        return None
    if len(targets) == 1:
        return targets[0]

    def call_all(*args: Any) -> None:
        for target in targets:
            target(*args)

    return call_all


async def run_service(config: Config, stop: asyncio.Event,
                      hooks: ServiceHooks | None = None) -> None:
    """Run the service until ``stop``, with the ops listener when ``config.server`` is set."""
    if config.server is None:
        await Service(config, hooks=hooks).run(stop)
        return
    ops = Ops(config)
    service = Service(config, hooks=ops.hooks(hooks))
    async with ops.listening(service, stop):
        await service.run(stop)
