"""The ops listener against hostile clients: odd headers, foreign Host names, framing."""

from __future__ import annotations

import asyncio
import logging
import re
from importlib import resources
from urllib.parse import urlsplit

from notifier.server.guard import HostCheck, host_name, page_policy
from tests.opsutil import ADMIN_TOKEN, ops_config, serving

SECURITY_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer"}


async def _raw(url: str, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as bytes on a fresh connection; the status and the whole answer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]), answer


def _request(method: str, path: str, host: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + host, b"Connection: close",
             *headers, b"Content-Length: " + str(len(body)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def test_a_non_utf8_authorization_header_is_refused_with_401(
        emulator, receiver, tmp_path, caplog):
    """Latin-1 bytes in Authorization: 401 like any wrong token, no 500, no traceback."""
    caplog.set_level(logging.DEBUG)
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"],
                        server={"admin_token": ADMIN_TOKEN})
    async with serving(config) as s:
        host = urlsplit(s.url).netloc.encode()
        for token in (b"Bearer \xe9t\xe9-\xff\xfe", b"\xc3\x28", b"Bearer " + b"\x80" * 40):
            status, answer = await _raw(s.url, _request(
                "POST", "/api/dead-letters/replay", host, b"Authorization: " + token,
                b"Content-Type: application/json", body=b'{"all": true}'))
            assert status == 401, answer
            assert b"wrong admin token" in answer
        status, _ = await _raw(s.url, _request("GET", "/healthz", host))
        assert status == 200  # the listener still answers
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_every_answer_carries_the_security_headers(emulator, receiver, tmp_path):
    """Page, API, metrics, health, 404 and refusals: CSP with no framing, nosniff, no referrer."""
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"])
    async with serving(config) as s:
        for method, path in [("GET", "/"), ("GET", "/api/status"), ("GET", "/metrics"),
                             ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/nope"),
                             ("POST", "/api/dead-letters/replay"), ("PUT", "/metrics")]:
            async with s.http.request(method, s.url + path) as resp:
                for name, value in SECURITY_HEADERS.items():
                    assert resp.headers.get(name) == value, (path, name, resp.status)
                csp = resp.headers["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
                assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        async with s.http.get(s.url + "/") as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'sha256-" in csp and "style-src 'sha256-" in csp
            assert "connect-src 'self'" in csp and csp == page_policy(await resp.text())


HOSTS = [
    (b"evil.example", 421), (b"evil.example:9464", 421), (b"127.0.0.1.nip.io", 421),
    (b"localhost.evil.example", 421), (b"\xe9vil.example", 421), (b"[::1]x", 421),
    (b"localhost", 200), (b"LOCALHOST:9464", 200), (b"127.0.0.1:1234", 200),
    (b"[::1]:9464", 200), (b"10.1.2.3:9464", 200), (b"metrics.internal:9464", 200),
]


async def test_only_known_host_names_are_answered(emulator, receiver, tmp_path, caplog):
    """DNS rebinding: a foreign name in Host gets 421 on every path but /healthz."""
    config = ops_config(tmp_path, emulator, receiver, rooms=["r1"],
                        server={"allowed_hosts": ["metrics.internal"]})
    async with serving(config) as s:
        for host, status in HOSTS:
            for path in ("/", "/api/status", "/metrics", "/readyz"):
                got, answer = await _raw(s.url, _request("GET", path, host))
                assert (got == 421) == (status == 421), (host, path, answer)
                if status == 421:
                    assert b"server.allowed_hosts" in answer and b"Content-Security" in answer
            got, _ = await _raw(s.url, _request("GET", "/healthz", host))
            assert got == 200, host  # liveness probes do not depend on names
    refusals = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    assert len(refusals) == 6 and "'evil.example:9464'" in refusals[1]  # once per name


def test_host_check_defaults_and_the_wildcard():
    """localhost, the listen host and IP literals by default; "*" accepts any name."""
    check = HostCheck("notifier", ())
    assert check.accepts("notifier:9464") and check.accepts("localhost.")
    assert check.accepts(None) and check.accepts("[::1]") and check.accepts("192.0.2.1")
    assert not check.accepts("notifier.evil.example") and not check.accepts("")
    assert not HostCheck("0.0.0.0", ()).accepts("0.0.0.0.evil.example")
    assert HostCheck("0.0.0.0", ("*",)).accepts("anything.example")
    assert host_name("[::1]:80") == "::1" and host_name("a:b") is None


def test_the_status_page_needs_no_inline_handlers_or_style_attributes():
    """The CSP allows the page's <script> and <style> blocks only: no on*= or style=."""
    page = resources.files("notifier.server").joinpath("status.html").read_text("utf-8")
    assert not re.search(r"<[^>]*\s(on[a-z]+|style)\s*=", page, re.I)
    assert "javascript:" not in page.lower()
