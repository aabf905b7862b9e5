"""Event and delivery ids are stable: the same message version gives the same ids in
every release (receivers deduplicate on webhook-id; outbox rows are keyed by them)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.events import (
    CREATED,
    EDITED,
    NEVER_EDITED,
    Delivery,
    Event,
    EventKind,
    delivery_id,
    event_id,
)


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


@given(st.text(min_size=1), st.sampled_from([None, "", NEVER_EDITED, "2026-11-25T10:00:00Z"]),
       st.sampled_from([CREATED, EDITED]), st.text(), st.lists(st.text(), max_size=3),
       st.floats(allow_nan=False), st.text())
def test_built_events_and_deliveries_are_those_their_constructors_make(
        ident: str, edited: str | None, kind: EventKind, room: str, rules: list[str],
        now: float, webhook: str) -> None:
    """``Event.from_message`` and ``Delivery.for_webhook`` fill every field as the
    dataclasses' own constructors do: equal, the same repr, still frozen."""
    message = {"id": ident, "editedAt": edited, "body": "b"}
    event = Event.from_message(kind, room, message, tuple(rules), now)
    made = Event(event_id(ident, edited or ""), kind, room, message, tuple(rules), now)
    assert event == made and repr(event) == repr(made)
    delivery = Delivery.for_webhook(event, webhook, tuple(rules))
    direct = Delivery(delivery_id(event.id, webhook), webhook, tuple(rules), made)
    assert delivery == direct and repr(delivery) == repr(direct)
    assert delivery.attempts == 0
    with pytest.raises(FrozenInstanceError):
        delivery.attempts = 1  # type: ignore[misc]
