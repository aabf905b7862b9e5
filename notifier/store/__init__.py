"""The state store: cursors, the ledger, the outbox, dead letters and quarantine.

``base`` holds the protocol every store keeps, its rows and ``open_store``; ``rows`` is how
both backends read and write the tables they share; ``sqlite`` and ``postgres`` implement
the protocol, split alike (``schema``, ``outbox``, ``dead_letters``, ``quarantine``), each
imported only when a ``state`` URL asks for it; ``transfer`` copies state between them.
"""

from notifier.store.base import (
    POSTGRES_SCHEMES,
    QUARANTINE_RAW_LIMIT,
    DeadLetter,
    Quarantined,
    RoomState,
    Store,
    StoreStats,
    WebhookState,
    open_store,
    shown_location,
)

__all__ = ["POSTGRES_SCHEMES", "QUARANTINE_RAW_LIMIT", "DeadLetter", "Quarantined", "RoomState",
           "Store", "StoreStats", "WebhookState", "open_store", "shown_location"]
