"""What every answer of the ops listener carries, and which requests it refuses outright.

* **Host check (DNS rebinding).** A web page the operator opens can make the browser send
  requests to a name it controls that resolves to 127.0.0.1, and read the answers as its
  own. Such a request carries that name in ``Host``, so only names the notifier knows are
  accepted: ``localhost``, the listen host, ``server.allowed_hosts``, and IP addresses
  (a rebinding attack cannot send one: the browser names the page's own host). Others get
  421. ``/healthz`` is exempt: it tells nothing, and a liveness probe must not depend on
  names.
* **Security headers** on every answer: a Content-Security-Policy that lets the status
  page run only its own inline script and style (by hash) and be framed by no one,
  ``X-Frame-Options``, ``X-Content-Type-Options``, ``Referrer-Policy``.
* **No traceback to the client.** An unexpected error is logged (redacted, like every
  record) and answered with a plain 500.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

__all__ = ["EXEMPT_PATHS", "HostCheck", "host_name", "page_policy", "secure"]

log = logging.getLogger("notifier.server")

#: Paths answered whatever the ``Host``: they reveal nothing.
EXEMPT_PATHS = frozenset({"/healthz"})
#: The policy of every answer that is not the status page (JSON, metrics, errors).
BASE_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_INLINE = {tag: re.compile(f"<{tag}>(.*?)</{tag}>", re.S) for tag in ("script", "style")}
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_REPORTED = 20  # distinct refused names logged, at most

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page_policy(html: str) -> str:
    """The CSP for ``html``: its inline ``<script>`` and ``<style>`` blocks by hash, the
    API on this origin, and nothing else."""
    sources = {tag: " ".join(_hash(block) for block in pattern.findall(html)) or "'none'"
               for tag, pattern in _INLINE.items()}
    return (f"default-src 'none'; script-src {sources['script']}; "
            f"style-src {sources['style']}; connect-src 'self'; img-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def _hash(block: str) -> str:
    digest = hashlib.sha256(block.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def host_name(host: str) -> str | None:
    """The name part of a ``Host`` header (lowercase, no port), or None when malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, port = host[1:].partition("]")
        if not bracket:
            return None
    else:
        name, _, port = host.partition(":") if host.count(":") == 1 else (host, "", "")
    if port.startswith(":"):
        port = port[1:]
    if (port and not port.isdigit()) or not name.isascii() or not name.isprintable():
        return None
    return name.rstrip(".")


class HostCheck:
    """Which ``Host`` names the listener answers (see the module docstring)."""

    def __init__(self, listen_host: str, allowed: Iterable[str]) -> None:
        names = {"localhost", *(name.lower().rstrip(".") for name in allowed)}
        if listen_host not in _WILDCARDS:
            names.add(listen_host.lower())
        self.any = "*" in names
        self.names = frozenset(names - {"*"})
        self._reported: set[str] = set()

    def accepts(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header (None: none sent) is answered."""
        if host is None or self.any:
            return True  # a browser always sends Host; a client without one is no page
        name = host_name(host)
        if name is None:
            return False
        if name in self.names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def refused(self, host: str) -> None:
        """Log the first refusals of each name (a scraper or proxy left out of the config);
        a bounded number of them, whatever clients send."""
        if host in self._reported or len(self._reported) >= _REPORTED:
            return
        self._reported.add(host)
        log.warning("ops listener: refused a request for host %r (421); add the name to "
                    "server.allowed_hosts if it is yours", host)


def secure(check: HostCheck, page_csp: str) -> tuple[Callable[..., Awaitable[None]],
                                                     Callable[..., Awaitable[web.StreamResponse]]]:
    """The response-prepare hook (headers) and the middleware (Host check, clean 500)."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        html = response.content_type == "text/html"
        response.headers["Content-Security-Policy"] = page_csp if html else BASE_POLICY
        response.headers.update(HEADERS)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if request.path not in EXEMPT_PATHS and not check.accepts(host):
            check.refused(host or "")
            return web.json_response({"error": "misdirected request: this host name is not "
                                      "in server.allowed_hosts"}, status=421)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:  # a bug: logged with its (redacted) traceback, not sent
            log.exception("ops listener: %s %s failed", request.method, request.path)
            return web.json_response({"error": "internal error; see the notifier's log"},
                                     status=500)

    return add_headers, guard
