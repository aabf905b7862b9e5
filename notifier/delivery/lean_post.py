"""A webhook's plain POST sent with aiohttp's own parts, without ``ClientSession._request``.

``ClientSession._request`` orchestrates everything a request may need: default headers,
URL joining, cookies, auth (given, in the URL, from netrc), proxies, redirects, a
timeout handle, trace hooks, middlewares, a retry on a persistent connection, a status
check. The webhook session uses none of it: no cookie jar, no redirects followed, no
aiohttp timeout (notifier.delivery.deadlines keeps the webhook's), no proxy, auth, traces
or middlewares, and a POST is never retried on a kept connection. Per request, that
orchestration was the largest Python cost left in aiohttp (bench/RESULTS.md, "(send7)").

``LeanPost`` does for a plain POST what ``_request`` does on that path, with the same
aiohttp parts in the same order: the request built by ``InlineBodyRequest``'s plain
constructor, a connection from the session's connector, the session's response
parameters set on its protocol, aiohttp's ``send`` and ``ClientResponse.start``, and
``_request``'s error mapping and clean-up (a connect timeout is ``ConnectionTimeoutError``,
an ``OSError`` is ``ClientOSError``, a failure closes the response and the connection).
One step is left out: on a kept connection, ``_request`` sets the same response
parameters again and so builds a new response parser for every request; ``LeanPost``
keeps the parser the connection has. Every request of this session sets the same
parameters (this session's, for a POST: a body expected, read to EOF, no timer), and
aiohttp's parser reads one response after another on a connection, as its server's
does requests; a connection is kept only when its last response was read whole.

Anything else (a URL or headers aiohttp would rewrite, a body not plain, a session
configured otherwise, another aiohttp minor) goes through ``_request``
(tests/test_lean_post.py sends each case both ways and compares).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import hdrs
from aiohttp.client_exceptions import ClientError, ClientOSError, ConnectionTimeoutError
from aiohttp.client_reqrep import ClientResponse
from aiohttp.helpers import TimerNoop
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict
from yarl import URL

from notifier.delivery.inline_request import (
    _INLINE_MAX,
    LEAN,
    InlineBodyRequest,
    _plain_headers,
    _plain_url,
)

__all__ = ["LeanPost", "lean_session"]

#: How many sets of header names a ``LeanPost`` remembers: a webhook's requests use one
#: or two (signed or not, traced or not); any others are checked each time.
_PLANS = 16


def lean_session(session: aiohttp.ClientSession) -> bool:
    """Whether ``_request`` would do nothing for this session's POSTs but what
    ``LeanPost`` does: none of its per-session options is in use."""
    s: Any = session
    timeout = session.timeout
    return (LEAN and s._request_class is InlineBodyRequest and not s._default_headers
            and not s._skip_auto_headers and s._default_proxy is None
            and s._default_auth is None and not s._trust_env and s._base_url is None
            and not s._trace_configs and not s._middlewares and s._raise_for_status is False
            and type(session.cookie_jar) is aiohttp.DummyCookieJar
            and s._response_class is ClientResponse and s._version is aiohttp.HttpVersion11
            and timeout.total is None and timeout.connect is None
            and not s._loop.get_debug())


class LeanPost:
    """POSTs to one URL through a session: the plain case directly (see the module's
    docstring), anything else by the session's ``_request``."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url
        self._target = target = (_plain_target(session, url) if lean_session(session)
                                 else None)
        #: The Host header as aiohttp writes it for this URL (first of every request's).
        self._host = (() if target is None
                      else ((hdrs.HOST, target.host_port_subcomponent or ""),))
        #: Per set of header names, what ``_learn`` found.
        self._added: dict[tuple[str, ...], tuple[tuple[str, str], ...] | None] = {}
        s: Any = session
        self._loop: asyncio.AbstractEventLoop = s._loop
        connector: Any = session.connector
        self._response_params = {
            "skip_payload": False, "read_until_eof": True,
            "auto_decompress": s._auto_decompress, "read_timeout": session.timeout.sock_read,
            "read_bufsize": s._read_bufsize,
            "timeout_ceil_threshold": connector._timeout_ceil_threshold,
            "max_line_size": s._max_line_size, "max_field_size": s._max_field_size,
            "max_headers": s._max_headers}

    async def __call__(self, body: bytes, headers: dict[str, str]) -> ClientResponse:
        """POST ``body`` with ``headers`` (redirects not followed); the response started."""
        session = self._session
        target = self._target
        if target is None or session.closed or not 0 < len(body) <= _INLINE_MAX:
            return await self._request(body, headers)
        names = tuple(headers)
        try:
            added = self._added[names]
        except KeyError:  # names not seen yet
            added = self._learn(names)
        if added is None:
            return await self._request(body, headers)
        sent = CIMultiDict(self._host)  # as ``_build_plain`` makes it of these names
        sent.extend(headers)
        if added:
            sent.extend(added)
        sent[hdrs.CONTENT_LENGTH] = str(len(body))
        req = InlineBodyRequest.__new__(InlineBodyRequest)
        req._set_plain(target, sent, body, self._loop, None, TimerNoop(), session, True,
                       None, None)
        payload: Any = req._body
        try:
            return await self._send(req)
        finally:
            await payload.close()

    def _learn(self, names: tuple[str, ...]) -> tuple[tuple[str, str], ...] | None:
        """The headers aiohttp adds after a request's own of these names (its defaults
        the request does not set), or None if it would do more than copy them: names
        equal but for case (it merges them), no Content-Type, a Host, Content-Length or
        Expect (``_plain_headers``). Remembered for a few sets of names (a webhook's
        requests use one or two)."""
        given = CIMultiDict((name, "") for name in names)
        plain = len({name.lower() for name in names}) == len(names) and _plain_headers(given)
        added = None if not plain else tuple(
            (name, value) for name, value in (*InlineBodyRequest.DEFAULT_HEADERS.items(),
                                              (hdrs.USER_AGENT, SERVER_SOFTWARE))
            if name not in given)
        if len(self._added) < _PLANS:
            self._added[names] = added
        return added

    async def _send(self, req: InlineBodyRequest) -> ClientResponse:
        """``_request``'s ``_connect_and_send_request`` and its error mapping, for a POST
        that is never retried."""
        session = self._session
        connector: Any = session.connector
        try:
            try:
                conn = await connector.connect(req, traces=req._traces,
                                               timeout=session.timeout)
            except TimeoutError as exc:
                raise ConnectionTimeoutError(f"Connection timeout to host {req.url}") from exc
            protocol: Any = conn.protocol
            if protocol._parser is None:  # a new connection: its response parser
                protocol.set_response_params(timer=req._timer, **self._response_params)
            try:
                resp = await req.send(conn)
                try:
                    await resp.start(conn)
                except BaseException:
                    resp.close()
                    raise
            except BaseException:
                conn.close()
                raise
            return resp
        except ClientError:
            raise
        except OSError as exc:
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise
            raise ClientOSError(*exc.args) from exc

    async def _request(self, body: bytes, headers: dict[str, str]) -> ClientResponse:
        """The session's request, without ``post``'s context-manager wrapper (a generic
        alias called per request) on the aiohttp minor this was checked against."""
        session = self._session
        send = session._request if LEAN else session.request
        return await send(hdrs.METH_POST, self._url, data=body, headers=headers,
                          allow_redirects=False)


def _plain_target(session: aiohttp.ClientSession, url: str) -> URL | None:
    """The URL ``_request`` would send to, if it would send to it unchanged (an absolute
    URL of a scheme the connector serves, without credentials or fragment)."""
    try:
        target = URL(url)
    except ValueError:
        return None
    connector: Any = session.connector
    if (not target.absolute or not _plain_url(target)
            or target.scheme not in connector.allowed_protocol_schema_set):
        return None
    return target
