"""Example requests for the AsyncAPI document, made by the formats themselves.

Each example is what the notifier sends for one sample message: the body from the real
format, the headers from the real transport's rules, signed with EXAMPLE_SECRET at
EXAMPLE_TIME, so a receiver can check its signature verification against them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from notifier.config import Webhook
from notifier.delivery.formats import formatter_for
from notifier.events import CREATED, EDITED, NEVER_EDITED, WEBHOOK_DISABLED, Delivery, Event
from notifier.events import event_id as make_event_id
from notifier.signing import decode_secret, signature_headers

__all__ = ["EXAMPLE_SECRET", "EXAMPLE_TIME", "example"]

#: A published, worthless secret: the examples' signatures verify with it.
EXAMPLE_SECRET = "whsec_" + base64.b64encode(b"roomlio-notifier example secret!").decode()
#: 2026-11-25T10:00:03Z: when the sample message was seen and its example signed (its
#: edit is seen, and signed, 300 seconds later).
EXAMPLE_TIME = 1_795_600_803

_MESSAGE = {
    "id": "msg_bvr0ngdnf4q1u52mfj0g", "userID": "usr_bvr0h6tnf4q1u52mfisg",
    "visibility": "", "username": "jdoe", "first": "Jane", "last": "Doe",
    "roomName": "Support 42", "userType": "member", "body": "URGENT: refund please",
    "messageType": "user", "links": [], "roomID": "rm_bvr0h6tnf4q1u52mfit0",
    "createdAt": "2026-11-25T10:00:02Z", "editedAt": NEVER_EDITED,
}
_RULES = ("refunds", "urgent")


def _delivery(kind: str) -> Delivery:
    if kind == WEBHOOK_DISABLED:
        data = {"webhook": "crm", "reason": "410 Gone", "disabledAt": "2026-11-25T10:00:03Z"}
        event = Event(make_event_id(f"{WEBHOOK_DISABLED}/crm", data["disabledAt"]),
                      WEBHOOK_DISABLED, "", data, (), float(EXAMPLE_TIME))
        return Delivery.for_webhook(event, "ops", ())
    message = dict(_MESSAGE)
    if kind == EDITED:
        message.update(body="URGENT: refund please, order 1234",
                       editedAt="2026-11-25T10:05:00Z")
    event = Event.from_message(CREATED if kind == CREATED else EDITED, "support-42", message,
                               _RULES, float(EXAMPLE_TIME if kind == CREATED else
                                             EXAMPLE_TIME + 300))
    return Delivery.for_webhook(event, "crm", _RULES)


def example(fmt: str, kind: str = CREATED, **options: Any) -> dict[str, Any]:
    """The request of webhook format ``fmt`` for a sample event of ``kind``: headers as
    sent (signed when the format signs) and the body, parsed."""
    webhook = Webhook(name="crm", url="https://crm.example.com/hooks/roomlio", format=fmt,
                      **options)
    delivery = _delivery(kind)
    payload = formatter_for(webhook)(delivery)
    headers = {"content-type": payload.content_type, **dict(payload.headers)}
    if payload.signed:
        headers.update(signature_headers((decode_secret(EXAMPLE_SECRET),), delivery.id,
                                         int(delivery.event.detected_at), payload.body))
    else:
        headers["webhook-id"] = delivery.id
    return {"headers": headers, "payload": json.loads(payload.body)}
