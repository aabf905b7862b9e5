"""Event and delivery ids are stable: the same message version gives the same ids in
every release (receivers deduplicate on webhook-id; outbox rows are keyed by them)."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from notifier.events import NEVER_EDITED, delivery_id, event_id


def _reference(prefix: str, *parts: str) -> str:
    """The ids as first defined: base32 of the first 20 bytes of a SHA-256."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()[:20]
    return prefix + base64.b32encode(digest).decode().rstrip("=").lower()


def test_ids_of_a_known_message_are_those_earlier_releases_gave():
    event = event_id("msg_00000000000000000001", NEVER_EDITED)
    assert event == "evt_jrektgedhque56bt53h3laa63fdmv4gr"
    assert delivery_id(event, "crm") == "msg_fxqlvjyaltoyg63ocmxqaxmbb65j4khj"


@given(st.text(), st.text(min_size=1), st.text())
def test_ids_are_base32_of_the_sha256_of_their_parts(message_id, edited_at, webhook):
    event = event_id(message_id, edited_at)
    assert event == _reference("evt_", message_id, edited_at)
    assert delivery_id(event, webhook) == _reference("msg_", event, webhook)
