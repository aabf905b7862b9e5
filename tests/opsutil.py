"""Helpers for the ops listener tests: a config with a ``server:`` section, a running service."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from notifier.config import Config
from notifier.delivery.formats import load_config
from notifier.runtime.service import Service, ServiceHooks
from notifier.server import Listener
from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.conftest import TEST_ENV, Outcomes, config_text

ADMIN_TOKEN = "admin-" + "t" * 24


def ops_config(tmp_path: Path, emulator: RoomlioEmulator, receiver: WebhookReceiver, *,
               server: dict[str, Any] | None = None, logging: dict[str, Any] | None = None,
               **kwargs: Any) -> Config:
    """A config for this test's emulator and receiver with the listener on a free port."""
    document = yaml.safe_load(config_text(emulator.url, receiver.url, **kwargs))
    document["server"] = {"listen": "127.0.0.1:0", **(server or {})}
    if logging is not None:
        document["logging"] = logging
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_config(str(path), env={**os.environ, **TEST_ENV})


@dataclass
class Serving:
    """A running service with its listener."""

    ops: Listener
    service: Service
    url: str
    stop: asyncio.Event
    http: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.url + path) as resp:
            return resp.status, await resp.text()

    async def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(self.url + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    def sample(self, name: str, **labels: str) -> float | None:
        """The current value of one metric sample (None when it does not exist)."""
        value = self.ops.metrics.registry.get_sample_value(name, labels)
        return None if value is None else float(value)


@contextlib.asynccontextmanager
async def serving(config: Config, outcomes: Outcomes | None = None,
                  ops_stop: asyncio.Event | None = None) -> AsyncIterator[Serving]:
    """Run the service and its listener in this loop for the body of the block."""
    ops = Listener(config)
    service = Service(config, hooks=ops.hooks(ServiceHooks(on_outcome=outcomes)))
    stop = asyncio.Event()
    async with ops.listening(service, ops_stop or stop) as url, aiohttp.ClientSession() as http:
        task = asyncio.create_task(service.run(stop))
        try:
            yield Serving(ops, service, url, stop, http)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)


async def until(predicate: Any, timeout: float = 10, *, every: float = 0.05) -> None:
    """Wait for ``predicate()`` (sync or async) to hold: for state only a request can read."""
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(every)
