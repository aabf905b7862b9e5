"""The tailers' hand-off to this process's sender: the seam between polling and delivery
(neither imports the other; the service wires them here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from notifier.delivery.sender import Reservation, Sender
from notifier.events import Delivery

__all__ = ["SenderHandOff"]


class SenderHandOff:
    """A ``notifier.polling.tailer.HandOff``: the deliveries a page adds for a lane of
    ``sender`` that can take them now are committed claimed and started from memory; for
    the others (ordered, grouped, an open breaker, a full lane, a delivery worker's
    webhook), ``poke`` wakes whoever claims them from the outbox."""

    __slots__ = ("_poke", "_sender")

    def __init__(self, sender: Sender, poke: Callable[[], None]) -> None:
        self._sender, self._poke = sender, poke

    def room_for(self, deliveries: Sequence[Delivery]) -> Awaitable[None] | None:
        """The wait for room in the sender's lanes (None: no need to wait)."""
        return self._sender.room_for(deliveries)

    def reserve(self, deliveries: Sequence[Delivery]) -> Reservation | None:
        """Room in the sender's lanes for the page's deliveries it can start at once."""
        return self._sender.reserve(deliveries)

    def adopt(self, reserved: Reservation | None, added: Sequence[Delivery]) -> None:
        """Start the reserved deliveries of ``added``; wake the claimers for the rest."""
        self._sender.adopt(reserved, added)
        taken = reserved.ids if reserved is not None else ()
        if any(delivery.id not in taken for delivery in added):
            self._poke()
