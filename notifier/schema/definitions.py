"""The named JSON Schema (2020-12) definitions every published schema is made of.

One pool, each name unique, referenced as ``#/$defs/<Name>``: a published schema copies
the definitions it needs into its own ``$defs`` (so each file stands alone for a code
generator), and the AsyncAPI document moves all of them to ``components/schemas``. They
describe exactly what the formats in ``notifier.delivery.formats`` send: where a value is
passed on from Roomlio unchecked, the schema says so instead of promising a type.
"""

from __future__ import annotations

from typing import Any

from notifier.delivery.formats import slack, teams
from notifier.delivery.formats.cloudevents import (
    DATA_CONTENT_TYPE,
    SPECVERSION,
    TYPE_PREFIX,
)
from notifier.events import CREATED, EDITED, NEVER_EDITED, WEBHOOK_DISABLED

__all__ = ["DEFS", "EVENT_DEFS", "Schema", "ref"]

Schema = dict[str, Any]

#: What notifier.util.time.format_time writes: UTC, a Z, whole seconds or microseconds.
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"


def ref(name: str) -> Schema:
    """A reference to the definition ``name``."""
    return {"$ref": f"#/$defs/{name}"}


def _closed(required: list[str], properties: Schema, **extra: Any) -> Schema:
    """An object with exactly these properties (each listed one required)."""
    return {"type": "object", **extra, "required": required, "properties": properties,
            "additionalProperties": False}


def _unchecked(what: str) -> Schema:
    return {"description": f"{what}; passed on as Roomlio sent it, unchecked"}


_MESSAGE: Schema = {
    "type": "object",
    "title": "Roomlio message",
    "description": "The Roomlio message exactly as RoomHistory returned it. The notifier "
                   "checks only the fields typed here (a message failing them is "
                   "quarantined, never sent); fields Roomlio adds later pass through.",
    "required": ["id", "createdAt"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "examples": ["msg_bvr0ngdnf4q1u52mfj0g"]},
        "createdAt": {"type": "string", "minLength": 1,
                      "description": "ISO 8601, as Roomlio sent it (UTC with Z)"},
        "editedAt": {"type": ["string", "null"],
                     "description": f"ISO 8601; {NEVER_EDITED} means never edited"},
        "body": {"type": ["string", "null"], "description": "the text"},
        "messageType": {"type": ["string", "null"],
                        "description": "documented values: user, offline, system"},
        "userType": {"type": ["string", "null"],
                     "description": "documented values: admin, member, embed, embed_insecure"},
        "roomID": {"type": ["string", "null"], "examples": ["rm_bvr0h6tnf4q1u52mfit0"]},
        "links": {"type": ["array", "null"],
                  "items": _unchecked("documented as {id, type: image, url}")},
        "userID": _unchecked("documented as a string like usr_bvr0h6tnf4q1u52mfisg"),
        "visibility": _unchecked("documented as a string"),
        "username": _unchecked("documented as a string"),
        "first": _unchecked("documented as a string"),
        "last": _unchecked("documented as a string"),
        "roomName": _unchecked("documented as a string"),
    },
    "additionalProperties": True,
}


def _standard(title: str, kind: str, data: str, summary: str) -> Schema:
    return _closed(["type", "timestamp", "data"], {
        "type": {"const": kind},
        "timestamp": {**ref("Timestamp"),
                      "description": "when the notifier first saw this version"},
        "data": ref(data),
    }, title=title, description=f"{kind} (format: standard): {summary}")


def _cloudevent(title: str, kind: str, data: str, source: str, subject: str) -> Schema:
    return _closed(
        ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"],
        {
            "specversion": {"const": SPECVERSION},
            "id": ref("WebhookId"),
            "source": {"type": "string", "format": "uri", "pattern": f"^{source}",
                       "description": f"{source}<percent-encoded id>"},
            "type": {"const": TYPE_PREFIX + kind},
            "subject": {"type": "string", "description": subject},
            "time": {**ref("Timestamp"),
                     "description": "when the notifier first saw this version"},
            "datacontenttype": {"const": DATA_CONTENT_TYPE},
            "data": ref(data),
        },
        title=title,
        description=f"{TYPE_PREFIX}{kind} (format: cloudevents): a CloudEvents 1.0 event, "
                    "the body in structured mode; in binary mode `data` is the body and the "
                    "other attributes are ce-* headers.")


_MESSAGE_SOURCE = "urn:roomlio:room:"
_WEBHOOK_SOURCE = "urn:roomlio-notifier:webhook:"

EVENT_DEFS: dict[str, Schema] = {
    "MessageCreated": _standard("MessageCreated", CREATED, "MessageData",
                                "a message first seen by the notifier matched rules."),
    "MessageEdited": _standard("MessageEdited", EDITED, "MessageData",
                               "an edit (a new editedAt) of a message matched rules."),
    "WebhookDisabled": _standard("WebhookDisabled", WEBHOOK_DISABLED, "WebhookDisabledData",
                                 "a webhook was disabled (sent to ops_webhook)."),
    "CloudEventMessageCreated": _cloudevent("CloudEventMessageCreated", CREATED, "MessageData",
                                            _MESSAGE_SOURCE, "the message id"),
    "CloudEventMessageEdited": _cloudevent("CloudEventMessageEdited", EDITED, "MessageData",
                                           _MESSAGE_SOURCE, "the message id"),
    "CloudEventWebhookDisabled": _cloudevent("CloudEventWebhookDisabled", WEBHOOK_DISABLED,
                                             "WebhookDisabledData", _WEBHOOK_SOURCE,
                                             "the webhook's name"),
}
"""The envelope of each event type, in each format that has one; each title is its name
(what a code generator calls the class)."""


def _mrkdwn(limit: int) -> Schema:
    return _closed(["type", "text"], {"type": {"const": "mrkdwn"},
                                      "text": {"type": "string", "maxLength": limit}})


_SLACK: dict[str, Schema] = {
    "SlackBody": _closed(["text", "blocks"], {
        "text": {"type": "string", "description": "the notification text (mrkdwn-escaped)"},
        "blocks": {"type": "array", "minItems": 1, "maxItems": slack.MAX_BLOCKS,
                   "items": {"oneOf": [ref("SlackHeader"), ref("SlackSection"),
                                       ref("SlackContext")]}},
    }, title="SlackBody", description="format: slack: a Slack incoming-webhook payload "
                                      "(Block Kit), the subset the notifier sends."),
    "SlackMrkdwn": _mrkdwn(slack.SECTION_LIMIT),
    "SlackHeader": _closed(["type", "text"], {
        "type": {"const": "header"},
        "text": _closed(["type", "text", "emoji"], {
            "type": {"const": "plain_text"},
            "text": {"type": "string", "maxLength": slack.HEADER_LIMIT},
            "emoji": {"const": False}}),
    }),
    "SlackSection": {"oneOf": [
        _closed(["type", "text"], {"type": {"const": "section"}, "text": ref("SlackMrkdwn")}),
        _closed(["type", "fields"], {"type": {"const": "section"},
                                     "fields": {"type": "array", "items": ref("SlackMrkdwn")}}),
    ]},
    "SlackContext": _closed(["type", "elements"], {
        "type": {"const": "context"},
        "elements": {"type": "array", "minItems": 1, "items": ref("SlackMrkdwn")},
    }),
}


def _text_block() -> Schema:
    word = {"type": "string"}
    return _closed(["type", "text", "wrap"], {
        "type": {"const": "TextBlock"}, "text": {"type": "string"}, "wrap": {"const": True},
        "weight": word, "size": word, "isSubtle": {"type": "boolean"}, "spacing": word,
    }, description="weight, size, isSubtle and spacing appear where they style the card")


_TEAMS: dict[str, Schema] = {
    "TeamsBody": _closed(["type", "attachments"], {
        "type": {"const": "message"},
        "attachments": {"type": "array", "minItems": 1, "maxItems": 1, "items": _closed(
            ["contentType", "contentUrl", "content"], {
                "contentType": {"const": teams.ADAPTIVE}, "contentUrl": {"type": "null"},
                "content": ref("AdaptiveCard")})},
    }, title="TeamsBody", description="format: teams: the message a Teams Workflows webhook "
                                      f"expects, at most {teams.MAX_BYTES} bytes."),
    "AdaptiveCard": _closed(["$schema", "type", "version", "body"], {
        "$schema": {"const": "http://adaptivecards.io/schemas/adaptive-card.json"},
        "type": {"const": "AdaptiveCard"}, "version": {"const": teams.CARD_VERSION},
        "body": {"type": "array", "minItems": 1, "items": {"oneOf": [
            ref("TeamsTextBlock"), ref("TeamsQuote"), ref("TeamsFactSet")]}},
    }),
    "TeamsTextBlock": _text_block(),
    "TeamsQuote": _closed(["type", "style", "items"], {
        "type": {"const": "Container"}, "style": {"const": "emphasis"},
        "items": {"type": "array", "items": ref("TeamsTextBlock")}}),
    "TeamsFactSet": _closed(["type", "facts"], {
        "type": {"const": "FactSet"},
        "facts": {"type": "array", "items": _closed(["title", "value"], {
            "title": {"type": "string"}, "value": {"type": "string"}})}}),
}

DEFS: dict[str, Schema] = {
    "Timestamp": {"type": "string", "format": "date-time", "pattern": TIME_PATTERN,
                  "description": "ISO 8601 in UTC with a Z, to the second or microsecond"},
    "WebhookId": {"type": "string", "pattern": "^msg_[a-z2-7]{32}$",
                  "description": "the delivery's webhook-id: the same for one message "
                                 "version and webhook across retries and restarts"},
    "RoomlioMessage": _MESSAGE,
    "MessageData": _closed(["rules", "message"], {
        "rules": {"type": "array", "minItems": 1, "items": {"type": "string"},
                  "description": "every matched rule that notifies this webhook"},
        "message": ref("RoomlioMessage"),
    }),
    "WebhookDisabledData": _closed(["webhook", "reason", "disabledAt"], {
        "webhook": {"type": "string", "description": "the disabled webhook's name"},
        "reason": {"type": "string"},
        "disabledAt": ref("Timestamp"),
    }),
    **EVENT_DEFS,
    **_SLACK,
    **_TEAMS,
}
"""Every definition, by name."""
