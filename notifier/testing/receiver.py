"""WebhookReceiver: a real aiohttp server that accepts, verifies and records webhooks.

::

    async with WebhookReceiver({"/crm": "whsec_..."}) as hooks:
        url = hooks.url_for("/crm")          # give this to the notifier
        hooks.inject(Fault.status(503, retry_after=1), path="/crm")
        ...
        await hooks.wait_count(3)
        assert not hooks.duplicates()

A path with a secret has its Standard Webhooks signature checked: a ``whsec_`` secret
checks ``v1`` (HMAC) signatures, a ``whpk_`` public key ``v1a`` (ed25519) ones, as the
reference library does: a timestamp more than ``tolerance`` seconds off in either
direction (a replay, or a sender whose clock is wrong) fails too. A bad one is answered
401 and recorded with ``verified=False``. ``attempts`` holds every request, ``received``
the accepted (2xx) ones, ``late`` those answered only after the client had hung up.

A ``body_check`` (or, for receivers given none, the class's ``default_body_check``) looks
at each accepted request: what it says is wrong is kept in ``body_errors`` and the
request's ``body_error``, the answer unchanged. The test suite's check validates the
notifier's bodies against the published schemas (tests/schemacheck.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

from aiohttp import web

from notifier.signing import SignatureError, decode_verifying_key, verify
from notifier.testing._server import Changes, LocalServer
from notifier.testing.faults import Fault, FaultQueue
from notifier.util.aio import sleep_unless

__all__ = ["BodyCheck", "Received", "WebhookReceiver"]

_log = logging.getLogger(__name__)
_SUPPORTED_FAULTS = frozenset({"status", "delay", "reset"})


@dataclass(slots=True)
class Received:
    """One webhook request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    """Request headers, names lowercased."""
    body: bytes
    json: Any | None
    """The body parsed as JSON, or None if it is not JSON."""
    webhook_id: str | None
    verified: bool | None
    """True/False when the path has a secret, None when it has none."""
    error: str | None
    """Why the signature did not verify."""
    at: float
    """``time.monotonic()`` when the request arrived."""
    status: int | None = None
    """What we answered; None while in flight, after a drop, or if the client left."""
    fault: str | None = None
    """The kind of the injected fault this request consumed, if any."""
    body_error: str | None = None
    """What the body check found wrong with the body (None: nothing, or no check)."""


BodyCheck = Callable[[Received], "str | None"]
"""Says what is wrong with an accepted request's body; None when nothing is."""


def _normal_path(path: str) -> str:
    return path if path.startswith("/") else "/" + path


class WebhookReceiver:
    """An in-process webhook endpoint for tests, the demo and benchmarks."""

    default_body_check: ClassVar[BodyCheck | None] = None
    """The body check of every receiver made without one (the test suite sets it)."""

    def __init__(self, secrets: Mapping[str, str] | None = None, *, tolerance: int = 300,
                 on_receive: Callable[[Received], None] | None = None,
                 host: str = "127.0.0.1", port: int = 0,
                 body_check: BodyCheck | None = None) -> None:
        # Decode now, so a bad secret fails here rather than as 401s in the middle of a test.
        self._keys = {_normal_path(p): decode_verifying_key(s)
                      for p, s in (secrets or {}).items()}
        self.tolerance = tolerance
        self.on_receive = on_receive
        """Called with each accepted request (e.g. for ``notifier demo`` to print it)."""
        self.received: list[Received] = []
        self.attempts: list[Received] = []
        self.late: list[Received] = []
        self.body_check = body_check
        self.body_errors: list[Received] = []
        """Accepted requests whose body the body check found wrong."""
        self._faults = FaultQueue(_SUPPORTED_FAULTS)
        self._default_status: dict[str, int] = {}
        self._changes = Changes()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = LocalServer(app, host=host, port=port)
        self._url: str | None = None

    async def __aenter__(self) -> WebhookReceiver:
        self._url = await self._server.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._server.stop()
        self._url = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._url is None:
            raise RuntimeError("the receiver is not running: use 'async with WebhookReceiver()'")
        return self._url

    def url_for(self, path: str) -> str:
        """The full URL of ``path`` on this receiver."""
        return self.url + _normal_path(path)

    # -- steering ------------------------------------------------------------------------

    def inject(self, fault: Fault, *, path: str | None = None, times: int = 1) -> None:
        """Spoil the next ``times`` requests to ``path`` (None: any path).

        Supported: ``Fault.status(code, retry_after)``, ``Fault.delay(seconds)`` (then the
        normal answer) and ``Fault.DROP`` (close the connection without an answer).
        """
        self._faults.add(fault, None if path is None else _normal_path(path), times)

    def clear_faults(self) -> None:
        """Drop every fault not yet consumed."""
        self._faults.clear()

    def set_default_status(self, path: str, code: int | None) -> None:
        """Answer every request to ``path`` with ``code`` until cleared with None."""
        if code is None:
            self._default_status.pop(_normal_path(path), None)
        else:
            self._default_status[_normal_path(path)] = code

    # -- looking at what arrived -------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[WebhookReceiver], bool],
                       timeout: float = 10) -> None:
        """Wait until ``predicate(self)`` holds, re-checked after every request."""
        await self._changes.wait_for(lambda: predicate(self), timeout, self._describe)

    async def wait_count(self, n: int,
                         timeout: float = 10) -> None:
        """Wait until at least ``n`` requests have been accepted."""
        await self.wait_for(lambda r: len(r.received) >= n, timeout)

    def unique_ids(self) -> set[str]:
        """The distinct ``webhook-id``s accepted."""
        return {r.webhook_id for r in self.received if r.webhook_id is not None}

    def duplicates(self) -> dict[str, int]:
        """``webhook-id``s accepted more than once, with their counts."""
        counts = Counter(r.webhook_id for r in self.received if r.webhook_id is not None)
        return {wid: n for wid, n in counts.items() if n > 1}

    def _describe(self) -> str:
        statuses = Counter(a.status for a in self.attempts)
        return (f"{len(self.received)} received, {len(self.attempts)} attempts "
                f"(answers: {dict(statuses)}), {len(self.late)} late")

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        fault = self._faults.take(request.path)
        record = self._record(request, await request.read(), arrived)
        record.fault = None if fault is None else fault.kind
        self.attempts.append(record)
        self._changes.notify()
        try:
            response = await self._answer(request, record, fault)
        except asyncio.CancelledError:
            if fault is not None and fault.kind == "delay":
                self.late.append(record)  # the client hung up while we dawdled
            raise
        finally:
            self._changes.notify()
        return response

    async def _answer(self, request: web.Request, record: Received,
                      fault: Fault | None) -> web.StreamResponse:
        if fault is not None and fault.kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        if fault is not None and fault.kind == "status":
            assert fault.code is not None
            return self._respond(record, fault.code, fault.retry_after_header())
        if fault is not None and fault.kind == "delay":
            await sleep_unless(self._server.closing, fault.seconds)
            if request.transport is None or request.transport.is_closing():
                self.late.append(record)
                return web.Response(status=499)
        if record.verified is False:
            return self._respond(record, 401)
        return self._respond(record, self._default_status.get(record.path, 200))

    def _respond(self, record: Received, code: int,
                 retry_after: str | None = None) -> web.Response:
        record.status = code
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        if 200 <= code < 300:
            self._check_body(record)
            self.received.append(record)
            self._notify_listener(record)
        text = "ok" if code < 400 else (record.error or f"HTTP {code}")
        return web.Response(status=code, text=text, headers=headers)

    def _record(self, request: web.Request, body: bytes, arrived: float) -> Received:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            parsed = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
        verified: bool | None = None
        error = None
        key = self._keys.get(request.path)
        if key is not None:
            try:
                verify(key, headers, body, now=int(time.time()), tolerance=self.tolerance)
                verified = True
            except SignatureError as err:
                verified, error = False, str(err)
        return Received(request.path, headers, body, parsed, headers.get("webhook-id"),
                        verified, error, arrived)

    def _check_body(self, record: Received) -> None:
        check = self.body_check or WebhookReceiver.default_body_check
        if check is None:
            return
        try:
            record.body_error = check(record)
        except Exception as exc:  # a broken check is a finding, not a dropped request
            record.body_error = f"the body check failed: {type(exc).__name__}: {exc}"
        if record.body_error is not None:
            self.body_errors.append(record)

    def _notify_listener(self, record: Received) -> None:
        if self.on_receive is None:
            return
        try:
            self.on_receive(record)
        except Exception:
            # A broken listener must not turn a delivery into a failure the sender retries.
            _log.exception("on_receive listener failed")

