"""The SSRF guards of the aiohttp transport's connections: every DNS answer and every
peer address is checked before a socket connects (see notifier.delivery.transport)."""

from __future__ import annotations

import ipaddress
import socket

from aiohttp import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from notifier.errors import PrivateAddressRefused
from notifier.util.netguard import is_private_address

__all__ = ["ALLOW_PRIVATE", "GuardedResolver", "guarded_socket"]

#: How every refusal of a private address ends.
ALLOW_PRIVATE = _ALLOW = "set allow_private_urls: true to allow it"


def guarded_socket(addr_info: AddrInfoType) -> socket.socket:
    """The socket for one connection attempt; a private peer is refused before connecting.

    aiohttp calls this for every address it tries, resolved or literal, so no spelling of
    a host and no DNS answer reaches a private address unchecked.
    """
    family, kind, proto, _, address = addr_info
    peer = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    if is_private_address(peer):
        raise PrivateAddressRefused(f"connection to private address {peer} refused; {_ALLOW}")
    return socket.socket(family=family, type=kind, proto=proto)


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, refusing private answers."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if is_private_address(ipaddress.ip_address(result["host"])):
                raise PrivateAddressRefused(
                    f"{host} resolves to private address {result['host']}; {_ALLOW}")
        return results

    async def close(self) -> None:
        await self._inner.close()
