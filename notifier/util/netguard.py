"""Which webhook targets count as private: pure functions, no DNS.

The config loader and the sender refuse literal private addresses up front, judging the
host as aiohttp will connect to it (``connect_host``: after yarl's IDNA/NFKC folding, so
``１２７.０.０.１`` and ``127。0。0。1`` are 127.0.0.1); at send time the same question is
asked of every DNS answer and of every connection's peer address, so neither a public
name nor an odd spelling can smuggle a request onto the local network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

import yarl

__all__ = ["IPAddress", "connect_host", "is_private_address", "literal_address",
           "private_literal", "private_target"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Only these characters can make up the legacy IPv4 spellings that inet_aton accepts
# ("127.1", "0x7f.0.0.1", "2130706433"); the resolver would send them to loopback too.
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)


def is_private_address(ip: IPAddress) -> bool:
    """True for addresses a webhook must not reach: loopback, private, link-local, …"""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d reaches a.b.c.d, nothing else
            return is_private_address(ip.ipv4_mapped)
        if ip.sixtofour is not None and is_private_address(ip.sixtofour):
            return True
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_multicast
        or not ip.is_global
    )


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells literally (``[::1]``, ``127.1`` …), or None for a name."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _LEGACY_IPV4.fullmatch(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def private_literal(host: str) -> str | None:
    """How to name ``host`` in a message if it is private without a DNS lookup, else None."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return name
    address = literal_address(name)
    if address is not None and is_private_address(address):
        return name.strip("[]")
    return None


def connect_host(url: str) -> str | None:
    """The host of ``url`` exactly as aiohttp will connect to it, or None if unparsable.

    yarl applies IDNA (NFKC) to the host, so full-width or circled digits and ideographic
    full stops become an ASCII IP literal there; ``urlsplit`` keeps them as written.
    """
    try:
        return yarl.URL(url).raw_host
    except ValueError:
        return None


def private_target(url: str) -> str | None:
    """How to name the host of ``url`` if the client would connect to a private address
    without a DNS lookup, else None; a folded spelling is shown as read and as written."""
    host = connect_host(url)
    judged = private_literal(host) if host is not None else None
    if judged is None:
        return None
    written = urlsplit(url).hostname or ""
    if written.isascii():
        return private_literal(written) or judged
    return f"{judged}, written '{written}'"
