"""aiohttp's request, its in-memory body written without a task of its own on Python 3.11.

aiohttp's ``ClientRequest.send`` writes a request's body from a task. On Python 3.12 and
later that task starts eagerly: a body held in memory is written before ``send``
returns and the task is dropped, done. On 3.11 every POST pays for a task created,
scheduled, stepped and its done callbacks run (bench/RESULTS.md, "(send5)").
``InlineBodyRequest`` (the webhook session's ``request_class``) does on 3.11 what 3.12
does, with aiohttp's own ``write_bytes`` and so its error handling: a failed write is
set on the connection's protocol and raised when the answer is read, a cancelled one
closes the connection.

Only the plain case takes this path: a POST of a ``bytes`` body small enough that
writing it never waits (nothing to drain), no ``Expect: 100-continue``, no compression or
chunking, no proxy, no trace hooks, a transport not paused, and the aiohttp minor
version whose ``send`` this mirrors. Anything else goes through aiohttp's own ``send``.

Such a plain request is also built without aiohttp's general constructor (a dozen
``update_*`` steps, each a call and a header copy, for cookies, auth, proxies,
compression and bodies of every type): ``_build_plain`` sets what that constructor would
set for it, the same headers in the same order (tests/test_inline_request.py compares
the two).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
from aiohttp import hdrs
from aiohttp.client_reqrep import ClientResponse
from aiohttp.connector import Connection
from aiohttp.helpers import TimerNoop
from aiohttp.http import HttpVersion, HttpVersion11, StreamWriter
from aiohttp.payload import BytesPayload
from multidict import CIMultiDict
from yarl import URL

__all__ = ["INLINE", "LEAN", "InlineBodyRequest"]

#: Whether a plain request is built by ``_build_plain`` rather than aiohttp's general
#: constructor: the aiohttp minor version whose ``ClientRequest.__init__`` it mirrors.
LEAN = aiohttp.__version__.startswith("3.14.")
#: Whether the inline path is taken at all: Python 3.11 (3.12+ starts aiohttp's writer
#: task eagerly already) and the aiohttp minor version this module was checked against.
INLINE = sys.version_info < (3, 12) and LEAN
#: A bytes body's own headers, as aiohttp's ``BytesPayload`` gives them.
_OCTET_STREAM = ((hdrs.CONTENT_TYPE, "application/octet-stream"),)
#: The largest body written inline: below StreamWriter's drain limit (64 KiB) with room
#: for the headers, so the write never waits for the socket.
_INLINE_MAX = 48 * 1024


class InlineBodyRequest(aiohttp.ClientRequest):
    """A ``ClientRequest`` that writes a small in-memory body within ``send`` (see the
    module's docstring); any other request is sent by aiohttp's own ``send``."""

    #: The body's length when ``_build_plain`` built the request (None: aiohttp did).
    _plain_length: int | None = None

    def __init__(self, method: str, url: URL, *, params: Any = None, headers: Any = None,
                 skip_auto_headers: Any = None, data: Any = None, cookies: Any = None,
                 auth: Any = None, version: HttpVersion = HttpVersion11, compress: Any = None,
                 chunked: bool | None = None, expect100: bool = False,
                 loop: asyncio.AbstractEventLoop | None = None,
                 response_class: type[ClientResponse] | None = None, proxy: URL | None = None,
                 proxy_auth: Any = None, timer: Any = None, session: Any = None,
                 ssl: Any = True, proxy_headers: Any = None, traces: Any = None,
                 trust_env: bool = False, server_hostname: str | None = None) -> None:
        if (LEAN and method == "POST" and type(data) is bytes and 0 < len(data) <= _INLINE_MAX
                and not params and not cookies and auth is None and not compress
                and chunked is None and not expect100 and proxy is None and proxy_headers is None
                and skip_auto_headers is None and version is HttpVersion11 and not traces
                and loop is not None and not loop.get_debug() and type(url) is URL
                and _plain_url(url) and type(headers) is CIMultiDict and _plain_headers(headers)):
            self._build_plain(url, headers, data, loop, response_class, timer, session, ssl,
                              server_hostname, traces)
            return
        super().__init__(
            method, url, params=params, headers=headers, skip_auto_headers=skip_auto_headers,
            data=data, cookies=cookies, auth=auth, version=version, compress=compress,
            chunked=chunked, expect100=expect100, loop=loop, response_class=response_class,
            proxy=proxy, proxy_auth=proxy_auth, timer=timer, session=session, ssl=ssl,
            proxy_headers=proxy_headers, traces=traces, trust_env=trust_env,
            server_hostname=server_hostname)

    def _build_plain(self, url: URL, headers: CIMultiDict[str], data: bytes,
                     loop: asyncio.AbstractEventLoop, response_class: type[ClientResponse] | None,
                     timer: Any, session: Any, ssl: Any, server_hostname: str | None,
                     traces: Any) -> None:
        """What aiohttp's constructor makes of a POST of ``data`` with these headers, set
        directly: the same attributes, the same headers in the same order."""
        sent: CIMultiDict[str] = CIMultiDict()
        sent[hdrs.HOST] = url.host_port_subcomponent  # type: ignore[assignment]
        sent.extend(headers)
        for name, value in self.DEFAULT_HEADERS.items():
            if name not in sent:
                sent[name] = value
        if hdrs.USER_AGENT not in sent:
            sent[hdrs.USER_AGENT] = aiohttp.http.SERVER_SOFTWARE
        sent[hdrs.CONTENT_LENGTH] = str(len(data))
        self._set_plain(url, sent, data, loop, response_class, timer, session, ssl,
                        server_hostname, traces)

    def _set_plain(self, url: URL, sent: CIMultiDict[str], data: bytes,
                   loop: asyncio.AbstractEventLoop, response_class: type[ClientResponse] | None,
                   timer: Any, session: Any, ssl: Any, server_hostname: str | None,
                   traces: Any) -> None:
        """``_build_plain``'s request with the headers to send made already (the caller's
        own Content-Type, aiohttp's defaults, Content-Length last)."""
        self._session = session
        self.original_url = self.url = url
        self.method = hdrs.METH_POST
        self.chunked = self.compress = self.length = None
        self.loop = loop
        self.response_class = ClientResponse if response_class is None else response_class
        self._timer = timer if timer is not None else TimerNoop()
        self._ssl = ssl if ssl is not None else True
        self.server_hostname = server_hostname
        self.version = HttpVersion11
        self.proxy = self.proxy_auth = self.proxy_headers = None
        self._body = _bytes_payload(data)
        self.headers = sent  # its Content-Type is the caller's (``_plain_headers``)
        self._traces = [] if traces is None else traces
        self._plain_length = len(data)

    async def send(self, conn: Connection) -> ClientResponse:
        """Send the request line, headers and body in one write; the response to read."""
        # built plain, it meets every condition of ``_plain`` but the connection's
        length = self._plain_length
        if not (INLINE and (_writable(conn) if length is not None else self._plain(conn))):
            return await super().send(conn)
        if length is None:
            length = self._get_content_length()
        protocol = conn.protocol
        assert protocol is not None
        writer = StreamWriter(protocol, self.loop)
        version = self.version
        # buffered, then written with the body in one call (aiohttp's own coalescing)
        await writer.write_headers(
            f"POST {self.url.raw_path_qs} HTTP/{version.major}.{version.minor}", self.headers)
        await self.write_bytes(writer, conn, length)
        response = self.response_class(
            self.method, self.original_url, writer=None, continue100=None,
            timer=self._timer, request_info=self.request_info, traces=self._traces,
            loop=self.loop, session=self._session, stream_writer=writer)
        self.response = response
        return response

    def _plain(self, conn: Connection) -> bool:
        """Whether aiohttp's ``send`` would do nothing here but write headers and body
        (no default header to add, no chunking, no 100-continue to wait for; an upload
        tracker is ``write_bytes``'s own business)."""
        body = self._body
        return (type(body) is BytesPayload and 0 < (body.size or 0) <= _INLINE_MAX
                and self.method == hdrs.METH_POST and self.proxy is None
                and not self._traces and not self.compress and self.chunked is None
                and self._continue is None and self.version == HttpVersion11
                and hdrs.CONTENT_TYPE in self.headers and _writable(conn))


def _writable(conn: Connection) -> bool:
    """A connection whose write goes out at once (aiohttp's ``send`` would not wait for it
    to drain) and that is kept (it would not add ``Connection: close``)."""
    protocol = conn.protocol
    return (protocol is not None and not protocol.writing_paused
            and not conn._connector.force_close)


def _plain_url(url: URL) -> bool:
    """An absolute URL without credentials or fragment (nothing for aiohttp to strip)."""
    return bool(url.raw_host) and not (url.raw_fragment or url.raw_user or url.raw_password)


def _plain_headers(headers: CIMultiDict[str]) -> bool:
    """Headers that aiohttp's constructor would only copy: a Content-Type given (else the
    body's own is added), and no Host, Content-Length or Expect (each makes it do more)."""
    return (hdrs.CONTENT_TYPE in headers and hdrs.HOST not in headers
            and hdrs.CONTENT_LENGTH not in headers and hdrs.EXPECT not in headers)


def _bytes_payload(data: bytes) -> BytesPayload:
    """``BytesPayload(data)`` as aiohttp builds it for a small body, set directly."""
    body = BytesPayload.__new__(BytesPayload)
    body._encoding = body._filename = None
    body._headers = CIMultiDict(_OCTET_STREAM)
    body._value = data
    body._size = len(data)
    return body
