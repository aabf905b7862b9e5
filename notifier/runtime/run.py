"""Running the daemon, start to stop: the event loop, the signals, the ops listener.

Start: ``run_daemon`` runs ``serve`` on uvloop when installed (``util.aio.run_loop``);
``serve`` starts the ops listener when the config has a ``server:`` section, then the
service, each entered on one ``AsyncExitStack`` so they close in reverse order.

Stop, on the first SIGTERM or SIGINT (``install_signals``; one that arrived before the
loop ran counts too, ``remember_early_signals``): the service's ``stop`` event is set and
its shutdown is phased: polling stops → deliveries in flight get
``delivery.shutdown_grace`` → what remains is cancelled with a reason (it stays in the
outbox) → sessions and the store close in reverse order; then the listener closes. A
second signal exits at once with 128 + its number.

SIGHUP reloads the config of the service this call runs.

The listener lives above this package (``notifier.server`` imports the service), so it is
handed in (``make_listener``) rather than imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from notifier import __version__
from notifier.config import Config
from notifier.util import tracing
from notifier.util.aio import run_loop

if TYPE_CHECKING:
    from notifier.runtime.hooks import ServiceHooks
    from notifier.runtime.service import Service

__all__ = ["Listener", "install_signals", "remember_early_signals", "run_daemon", "serve"]

log = logging.getLogger("notifier")


class Listener(Protocol):
    """What ``serve`` needs of the ops listener (``notifier.server.Listener``)."""

    def hooks(self, base: ServiceHooks | None = None) -> ServiceHooks:
        """The service's hooks: the listener's observers, then ``base``'s."""
        ...

    def listening(self, service: Service,
                  stop: asyncio.Event) -> AbstractAsyncContextManager[str]:
        """Serve while the block runs; yield the base URL."""
        ...


_early_signals: list[int] = []


def _remember_signal(signum: int, _frame: object) -> None:
    """A SIGTERM that arrives before the event loop runs is honoured once it does."""
    _early_signals.append(signum)


def remember_early_signals() -> None:
    """Keep a SIGTERM that arrives before ``install_signals`` (the process is starting)."""
    signal.signal(signal.SIGTERM, _remember_signal)


def install_signals(stop: asyncio.Event) -> None:
    """First SIGTERM/SIGINT: graceful stop. Second: exit at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            os._exit(128 + signum)
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    for signum in _early_signals:
        on_signal(signum)


def run_daemon(config: Config, *,
               make_listener: Callable[[Config], Listener] | None = None) -> None:
    """Run the notifier until SIGTERM/SIGINT; raise NotifierError when it cannot go on."""
    run_loop(_until_signalled(config, make_listener))


async def _until_signalled(config: Config,
                           make_listener: Callable[[Config], Listener] | None) -> None:
    stop = asyncio.Event()
    install_signals(stop)
    # SIGHUP's handler goes in before the service exists: its default ends the process
    services: list[Service] = []
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload_each, services)
    await serve(config, stop, make_listener=make_listener, on_service=services.append)


def _reload_each(services: list[Service]) -> None:
    for service in services:
        service.request_reload()


async def serve(config: Config, stop: asyncio.Event, *,
                make_listener: Callable[[Config], Listener] | None = None,
                hooks: ServiceHooks | None = None,
                on_service: Callable[[Service], None] | None = None) -> None:
    """Run the service until ``stop``, with the ops listener when ``config.server`` is set
    and ``make_listener`` is given; ``on_service`` sees the service before it starts."""
    # imported here: `notifier check` and `--help` import this module, not the service's
    # HTTP client, store drivers and metrics
    from notifier.runtime.service import Service

    async with contextlib.AsyncExitStack() as stack:
        listener = None
        if config.server is not None and make_listener is not None:
            listener = make_listener(config)
            hooks = listener.hooks(hooks)
        service = Service(config, hooks=hooks)
        # traces when the OTEL_* environment asks for them (docs/tracing.md)
        if tracing.start(version=__version__, instance=service.instance):
            stack.push_async_callback(asyncio.to_thread, tracing.stop)
        if on_service is not None:
            on_service(service)
        if listener is not None:
            await stack.enter_async_context(listener.listening(service, stop))
        await service.run(stop)
