"""The AsyncAPI 3.0 document of the webhook: one channel per format, its headers, the
Standard Webhooks signature scheme, the event types and an example of each.

The notifier is the application described; it *sends* (an HTTP POST) to the receiver, the
server. The JSON Schemas are ``definitions.DEFS``, moved to ``components/schemas``.
"""

from __future__ import annotations

from typing import Any

from notifier import __version__
from notifier.events import CREATED, EDITED, WEBHOOK_DISABLED
from notifier.schema.definitions import DEFS, Schema
from notifier.schema.examples import EXAMPLE_SECRET, example

__all__ = ["asyncapi"]

_HTTP = {"bindingVersion": "0.3.0"}
_SIGNATURE = (
    "Standard Webhooks (https://www.standardwebhooks.com/): with a secret set, each request "
    "carries webhook-id, webhook-timestamp (unix seconds, fresh on every attempt) and "
    "webhook-signature: space-separated `v1,<base64 HMAC-SHA256>` (a whsec_ secret) or "
    "`v1a,<base64 ed25519 signature>` (a whsk_ key; receivers hold the whpk_ public key), "
    "each over `{webhook-id}.{webhook-timestamp}.{body}`, the exact bytes sent. Reject a "
    "timestamp more than 5 minutes from now. Without a secret only webhook-id is sent. "
    f"The examples are signed with the published example secret {EXAMPLE_SECRET}.")


def _components_ref(node: Any) -> Any:
    """``node`` with each ``#/$defs/X`` reference pointed at ``#/components/schemas/X``."""
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref"
                    and isinstance(v, str) else _components_ref(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_components_ref(v) for v in node]
    return node


def _string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _headers(content_type: str, *, signed: bool = True, binary: bool = False) -> Schema:
    properties: Schema = {
        "content-type": {"const": content_type},
        "webhook-id": {"$ref": "#/components/schemas/WebhookId"},
    }
    if signed:
        properties["webhook-timestamp"] = _string("unix seconds of this attempt (signed "
                                                  "requests)", pattern="^[0-9]+$")
        properties["webhook-signature"] = _string(
            "space-separated v1,… and v1a,… signatures (signed requests)",
            pattern=r"^v1a?,[A-Za-z0-9+/=]+( v1a?,[A-Za-z0-9+/=]+)*$")
    if binary:
        for name, what in (("specversion", "1.0"), ("id", "equals webhook-id"),
                           ("source", "urn:roomlio:room:<roomID>"), ("type", "com.roomlio.…"),
                           ("subject", "the message id"), ("time", "ISO 8601 UTC")):
            properties[f"ce-{name}"] = _string(f"CloudEvents {name}: {what}; percent-encoded "
                                               "as the HTTP binding says")
    return {"type": "object", "required": ["content-type", "webhook-id"],
            "properties": properties}


def _message(title: str, summary: str, payload: Schema, headers: Schema,
             examples: list[dict[str, Any]]) -> Schema:
    return {
        "name": title, "title": title, "summary": summary,
        "contentType": headers["properties"]["content-type"]["const"],
        "headers": headers, "payload": payload,
        "correlationId": {"description": "the webhook-id: dedupe on it",
                          "location": "$message.header#/webhook-id"},
        "bindings": {"http": _HTTP},
        "examples": [{"name": title, "summary": summary, **e} for e in examples],
    }


def _schema(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _messages() -> dict[str, Schema]:
    return {**_standard_messages(), **_cloudevent_messages(), **_other_messages()}


def _standard_messages() -> dict[str, Schema]:
    json_headers = _headers("application/json")
    return {
        "messageCreated": _message("message.created", "A new message matched rules",
                                   _schema("MessageCreated"), json_headers,
                                   [example("standard", CREATED)]),
        "messageEdited": _message("message.edited", "An edited message matched rules",
                                  _schema("MessageEdited"), json_headers,
                                  [example("standard", EDITED)]),
        "webhookDisabled": _message("webhook.disabled", "A webhook was disabled (sent to "
                                    "ops_webhook)", _schema("WebhookDisabled"), json_headers,
                                    [example("standard", WEBHOOK_DISABLED)]),
    }


def _cloudevent_messages() -> dict[str, Schema]:
    data = {"oneOf": [_schema("MessageData"), _schema("WebhookDisabledData")]}
    return {
        "cloudEventStructured": _message(
            "cloudevent.structured", "A CloudEvent, structured mode",
            {"oneOf": [_schema(n) for n in ("CloudEventMessageCreated",
                                            "CloudEventMessageEdited",
                                            "CloudEventWebhookDisabled")]},
            _headers("application/cloudevents+json"),
            [example("cloudevents", CREATED), example("cloudevents", EDITED)]),
        "cloudEventBinary": _message(
            "cloudevent.binary", "A CloudEvent, binary mode (cloudevents_mode: binary)", data,
            _headers("application/json", binary=True),
            [example("cloudevents", CREATED, cloudevents_mode="binary")]),
    }


def _other_messages() -> dict[str, Schema]:
    return {
        "slack": _message("slack", "A Slack incoming-webhook message", _schema("SlackBody"),
                          _headers("application/json", signed=False),
                          [example("slack", CREATED)]),
        "teams": _message("teams", "A Teams Workflows message with an Adaptive Card",
                          _schema("TeamsBody"), _headers("application/json", signed=False),
                          [example("teams", CREATED)]),
        "template": {
            "name": "template", "title": "template",
            "summary": "Your own body (format: template): what your template renders, with "
                       "your content_type; it has no schema of ours. Signed like standard.",
            "headers": _headers("application/json"), "payload": {},
            "bindings": {"http": _HTTP},
        },
    }


_CHANNELS = {
    "standard": ("format: standard (the default)", ["messageCreated", "messageEdited",
                                                    "webhookDisabled"]),
    "cloudevents": ("format: cloudevents", ["cloudEventStructured", "cloudEventBinary"]),
    "slack": ("format: slack", ["slack"]),
    "teams": ("format: teams", ["teams"]),
    "template": ("format: template", ["template"]),
}


def _channels() -> tuple[dict[str, Schema], dict[str, Schema]]:
    channels: dict[str, Schema] = {}
    operations: dict[str, Schema] = {}
    for name, (title, messages) in _CHANNELS.items():
        channels[name] = {
            "address": None, "title": title,
            "description": "The webhook's url in rules.yaml; every request is an HTTP POST.",
            "servers": [{"$ref": "#/servers/receiver"}],
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        }
        operations[f"send{name.title()}"] = {
            "action": "send", "title": f"POST a {name} webhook",
            "channel": {"$ref": f"#/channels/{name}"},
            "bindings": {"http": {"method": "POST", **_HTTP}},
            "messages": [{"$ref": f"#/channels/{name}/messages/{m}"} for m in messages],
        }
    return channels, operations


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document (plain JSON values, in a stable order)."""
    channels, operations = _channels()
    return {
        "asyncapi": "3.0.0",
        "id": "urn:roomlio-notifier",
        "info": {"title": "roomlio-notifier webhooks", "version": __version__,
                 "description": "What roomlio-notifier POSTs to a webhook, per format. "
                                "Delivery is at least once: dedupe on webhook-id, answer "
                                "2xx once stored. " + _SIGNATURE,
                 "license": {"name": "MIT"}},
        "defaultContentType": "application/json",
        "servers": {"receiver": {
            "host": "receiver.example.com", "protocol": "https",
            "description": "Your receiver: the webhook's url in rules.yaml.",
            "security": [{"$ref": "#/components/securitySchemes/standardWebhooks"}]}},
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _components_ref(DEFS),
            "messages": _messages(),
            "securitySchemes": {"standardWebhooks": {
                "type": "httpApiKey", "name": "webhook-signature", "in": "header",
                "description": _SIGNATURE}},
        },
    }
