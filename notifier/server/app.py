"""The ops listener's aiohttp app: /metrics, /healthz, /readyz, the status page, admin actions.

Reads go through the running Service (its store, tailers and sender) and the Board;
state-changing requests (replay, enable) need ``Authorization: Bearer <admin_token>``
and are refused (403) when no token is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from notifier.config import ServerSettings
from notifier.errors import StoreError
from notifier.runtime.service import Service
from notifier.server.board import Board
from notifier.server.guard import HostCheck, page_policy, secure
from notifier.server.history import History
from notifier.server.metrics import CONTENT_TYPE, Metrics
from notifier.store import DeadLetter, Quarantined, RoomState, StoreStats, WebhookState
from notifier.util.redaction import Redactor

__all__ = ["ListenerState", "make_app"]

log = logging.getLogger("notifier.server")

#: How long /readyz waits for the store before calling it unreachable.
STORE_TIMEOUT = 2.0
#: Dead letters listed on the status page at most.
DEAD_LETTER_LIMIT = 200
#: How often the listener reads the store's outbox depth and dead letters for the charts
#: (every /metrics scrape and /api/status read records them too).
SAMPLE_SECONDS = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ListenerState:
    """What the handlers share: the service, its board, metrics and history, the stop event."""

    def __init__(self, service: Service, board: Board, metrics: Metrics,
                 stop: asyncio.Event, redactor: Redactor, history: History) -> None:
        self.service, self.board, self.metrics = service, board, metrics
        self.history = history
        self.stop, self.redactor = stop, redactor
        server = service.config.server
        self.admin_token = server.admin_token if server else None
        self.room_limit = (server or ServerSettings()).room_metrics_limit

    def states(self) -> dict[str, RoomState | None]:
        return {name: tailer.state for name, tailer in self.service.tailers.items()}

    async def webhook_states(self) -> dict[str, WebhookState]:
        """Each webhook's saved health (breaker, disabled), as the sender last saved it."""
        store = self.service.store
        if store is None:
            return {}
        async with asyncio.timeout(STORE_TIMEOUT):
            return await store.webhook_states()

    async def breakers(self) -> dict[str, str]:
        """Each configured webhook's breaker state ("closed" when none was saved)."""
        try:
            saved = await self.webhook_states()
        except (StoreError, TimeoutError):
            saved = {}
        return {name: saved[name].breaker if name in saved else "closed"
                for name in self.service.config.webhooks}

    async def stats(self) -> StoreStats | None:
        store = self.service.store
        if store is None:
            return None
        async with asyncio.timeout(STORE_TIMEOUT):
            stats = await store.stats()
        self.history.record_store(stats.outbox, stats.dead_letters)
        return stats


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, default=str))


def _listener(request: web.Request) -> ListenerState:
    state: ListenerState = request.app[LISTENER]
    return state


async def healthz(_request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the state store answers, every room was polled once, not shutting down."""
    listener = _listener(request)
    checks: dict[str, str] = {}
    try:
        checks["store"] = "ok" if await listener.stats() is not None else "not open yet"
    except (StoreError, TimeoutError) as exc:
        checks["store"] = f"unreachable: {listener.redactor.redact(str(exc)) or 'timed out'}"
    checks["first_poll"] = "ok" if listener.board.first_poll_done else "waiting"
    checks["shutdown"] = "shutting down" if listener.stop.is_set() else "ok"
    ready = all(value == "ok" for value in checks.values())
    return _json({"status": "ready" if ready else "not ready", "checks": checks},
                 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; store gauges are read now (left as they were if it fails)."""
    listener = _listener(request)
    try:
        stats = await listener.stats()
    except (StoreError, TimeoutError):
        stats = None
    listener.metrics.refresh(outbox=stats.outbox if stats else None,
                             dead_letters=stats.dead_letters if stats else None,
                             quarantined=stats.quarantined if stats else None,
                             rooms=listener.board.room_views(listener.states()),
                             breakers=await listener.breakers(),
                             api=listener.service.throttle.usage())
    return web.Response(body=listener.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


@functools.cache
def _page() -> str:
    return resources.files("notifier.server").joinpath("status.html").read_text("utf-8")


async def status_page(_request: web.Request) -> web.Response:
    """The status page: static HTML whose script reads /api/status."""
    return web.Response(text=_page(), content_type="text/html",
                        headers={"Cache-Control": "no-store"})


async def status_api(request: web.Request) -> web.Response:
    """Everything the status page shows, as JSON."""
    listener = _listener(request)
    dead: list[DeadLetter] = []
    kept: list[Quarantined] = []
    stats = None
    store = listener.service.store
    try:
        if store is not None:
            dead = (await store.dead_letters())[-DEAD_LETTER_LIMIT:]
            kept = await store.quarantined(limit=DEAD_LETTER_LIMIT)
            stats = await listener.stats()
    except (StoreError, TimeoutError):
        pass
    try:
        saved = await listener.webhook_states()
    except (StoreError, TimeoutError):
        saved = {}
    snap = listener.board.snapshot(states=listener.states(), webhooks=saved,
                                   dead_letters=dead, outbox=stats.outbox if stats else None,
                                   quarantine=kept)
    snap["dead_letters_total"] = stats.dead_letters if stats else len(dead)
    snap["quarantine_total"] = stats.quarantined if stats else len(kept)
    snap["admin"] = listener.admin_token is not None
    snap["history"] = listener.history.snapshot()
    snap["api"] = listener.service.throttle.usage()
    snap["polling_note"] = listener.service.polling_note
    return _json(_redacted(snap, listener.redactor))


def _redacted(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, list):
        return [_redacted(v, redactor) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v, redactor) for k, v in value.items()}
    return value


def _authorized(request: web.Request) -> web.Response | None:
    """None when the request carries the admin token; else the refusal to send."""
    token = _listener(request).admin_token
    if token is None:
        return _json({"error": "admin actions are disabled: set server.admin_token"}, 403)
    # aiohttp keeps bytes that are not UTF-8 as lone surrogates: compare them as sent
    given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        return _json({"error": "missing or wrong admin token"}, 401)
    return None


async def replay(request: web.Request) -> web.Response:
    """Put dead letters back in the outbox: body ``{"ids": [...]}`` or ``{"all": true}``."""
    refused = _authorized(request)
    if refused is not None:
        return refused
    listener = _listener(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    every = isinstance(body, dict) and body.get("all") is True
    ids = body.get("ids") if isinstance(body, dict) else None
    if not every and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        return _json({"error": 'send {"ids": ["msg_…"]} or {"all": true}'}, 400)
    store = listener.service.store
    if store is None:
        return _json({"error": "the state store is not open yet"}, 503)
    if every or not isinstance(ids, list):
        ids = [d.delivery.id for d in await store.dead_letters()]
    moved = await store.requeue_dead_letters(ids, time.time())
    listener.service.poke()
    return _json({"replayed": moved})


async def enable_webhook(request: web.Request) -> web.Response:
    """Turn a disabled webhook back on and reset its breaker."""
    refused = _authorized(request)
    if refused is not None:
        return refused
    listener = _listener(request)
    name = request.match_info["name"]
    if name not in listener.service.config.webhooks:
        return _json({"error": f"unknown webhook {name!r}"}, 404)
    store = listener.service.store
    if store is None:
        return _json({"error": "the state store is not open yet"}, 503)
    was = (await store.webhook_states()).get(name)
    # as `notifier webhook enable`: a fresh state; the sender adopts it on its next refresh
    await store.save_webhook_state(WebhookState(
        name, last_success_at=was.last_success_at if was else None))
    return _json({"enabled": name, "was_disabled": bool(was and was.disabled)})


LISTENER = web.AppKey("listener", ListenerState)


async def sample_store(app: web.Application) -> AsyncIterator[None]:
    """While the app runs, read the store every SAMPLE_SECONDS, so that the charts of the
    outbox and the dead letters have points when nobody has the page open."""

    async def sample() -> None:
        while True:
            try:
                await app[LISTENER].stats()  # records into the history
            except (StoreError, TimeoutError):
                pass  # a store that does not answer now: a gap in the chart
            except Exception:  # a bug: said once; the page's own reads still record
                log.exception("ops listener: reading the store for the charts failed; "
                              "their outbox and dead-letter points come from page reads only")
                return
            await asyncio.sleep(SAMPLE_SECONDS)

    task = asyncio.create_task(sample(), name="ops-listener-sampler")
    yield
    task.cancel(msg="ops listener stopping")
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_app(state: ListenerState) -> web.Application:
    """The aiohttp application for ``state``, behind the guard (notifier.server.guard)."""
    server = state.service.config.server
    check = HostCheck(server.host if server else "127.0.0.1",
                      server.allowed_hosts if server else ())
    add_headers, guard = secure(check, page_policy(_page()))
    app = web.Application(middlewares=[guard])
    app.on_response_prepare.append(add_headers)
    app[LISTENER] = state
    app.cleanup_ctx.append(sample_store)
    app.router.add_get("/", status_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/status", status_api)
    app.router.add_post("/api/dead-letters/replay", replay)
    app.router.add_post("/api/webhooks/{name}/enable", enable_webhook)
    return app
