"""Test doubles at the edge of the system: a Roomlio emulator and a webhook receiver.

The tests, ``notifier demo``, the chaos tests and the benchmarks all use them; both are
real aiohttp servers on 127.0.0.1 and async context managers.
"""

from notifier.testing.chatter import simulate_chatter
from notifier.testing.emulator import RequestRecord, RoomlioEmulator
from notifier.testing.faults import Fault
from notifier.testing.keylimit import KeyLimit
from notifier.testing.receiver import Received, WebhookReceiver

__all__ = [
    "Fault",
    "KeyLimit",
    "Received",
    "RequestRecord",
    "RoomlioEmulator",
    "WebhookReceiver",
    "simulate_chatter",
]
