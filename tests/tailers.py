"""A room's Tailer built as the service builds it, for tests that drive polls by hand."""

from __future__ import annotations

from dataclasses import replace

import aiohttp

from notifier.config import Config
from notifier.delivery.sender import Sender
from notifier.polling.client import RoomlioClient
from notifier.polling.pagesize import PageBudget
from notifier.polling.tailer import Tailer
from notifier.runtime.handoff import SenderHandOff
from notifier.runtime.reload import CompiledConfig
from notifier.store import Store

__all__ = ["tailer_for"]


def tailer_for(config: Config, store: Store, session: aiohttp.ClientSession,
               sender: Sender | None = None, *, page_size: int | None = None,
               budget: PageBudget | None = None) -> Tailer:
    """The Tailer of ``config``'s first room, handing its pages off to ``sender`` if given;
    ``page_size`` overrides the config's; ``budget``: its big-page turns (its own else)."""
    active = CompiledConfig.of(config)
    settings = config.roomlio if page_size is None else replace(config.roomlio,
                                                                page_size=page_size)
    return Tailer(config.rooms[0], client=RoomlioClient(settings, session), store=store,
                  matcher=active.matcher, routes=active.routes, settings=settings,
                  on_enqueued=lambda added: None,
                  handoff=None if sender is None else SenderHandOff(sender, lambda: None),
                  budget=budget)
