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
"""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import hdrs
from aiohttp.client_reqrep import ClientResponse
from aiohttp.connector import Connection
from aiohttp.http import HttpVersion11, StreamWriter
from aiohttp.payload import BytesPayload

__all__ = ["INLINE", "InlineBodyRequest"]

#: Whether the inline path is taken at all: Python 3.11 (3.12+ starts aiohttp's writer
#: task eagerly already) and the aiohttp minor version this module was checked against.
INLINE = sys.version_info < (3, 12) and aiohttp.__version__.startswith("3.14.")
#: The largest body written inline: below StreamWriter's drain limit (64 KiB) with room
#: for the headers, so the write never waits for the socket.
_INLINE_MAX = 48 * 1024


class InlineBodyRequest(aiohttp.ClientRequest):
    """A ``ClientRequest`` that writes a small in-memory body within ``send`` (see the
    module's docstring); any other request is sent by aiohttp's own ``send``."""

    async def send(self, conn: Connection) -> ClientResponse:
        """Send the request line, headers and body in one write; the response to read."""
        if not (INLINE and self._plain(conn)):
            return await super().send(conn)
        protocol = conn.protocol
        assert protocol is not None
        writer = StreamWriter(protocol, self.loop)
        version = self.version
        # buffered, then written with the body in one call (aiohttp's own coalescing)
        await writer.write_headers(
            f"POST {self.url.raw_path_qs} HTTP/{version.major}.{version.minor}", self.headers)
        await self.write_bytes(writer, conn, self._get_content_length())
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
        protocol = conn.protocol
        return (type(body) is BytesPayload and 0 < (body.size or 0) <= _INLINE_MAX
                and self.method == hdrs.METH_POST and self.proxy is None
                and not self._traces and not self.compress and self.chunked is None
                and self._continue is None and protocol is not None and not protocol.writing_paused
                and self.version == HttpVersion11 and not conn._connector.force_close
                and hdrs.CONTENT_TYPE in self.headers)
