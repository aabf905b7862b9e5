"""The published description of what the notifier sends: JSON Schemas and AsyncAPI.

``schema(name)`` is the JSON Schema (2020-12) of one body: an event type of the
``standard`` format, all of them (``standard``), the ``cloudevents`` envelope, or the
``slack`` and ``teams`` payloads (the ``template`` body is the user's own: it has none).
``asyncapi()`` (``notifier.schema.asyncapi``) describes the webhook as a whole. They are
built from the code, not written beside it: ``notifier schema`` prints them, and the copies
in the repository's ``schemas/`` folder are what it prints (a test compares them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from notifier.schema.definitions import DEFS, Schema, ref

__all__ = ["ID_PREFIX", "NAMES", "Schema", "files", "needed", "refs_in", "render", "schema"]

ID_PREFIX = "urn:roomlio-notifier:schema:"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

_ONE_OF = {
    "standard": ["MessageCreated", "MessageEdited", "WebhookDisabled"],
    "cloudevents": ["CloudEventMessageCreated", "CloudEventMessageEdited",
                    "CloudEventWebhookDisabled"],
}
_SINGLE = {"message.created": "MessageCreated", "message.edited": "MessageEdited",
           "webhook.disabled": "WebhookDisabled", "slack": "SlackBody", "teams": "TeamsBody"}
_TITLES = {
    "standard": ("StandardEvent", "Any body of format: standard: every event type a "
                 "standard webhook receives; `type` tells which."),
    "cloudevents": ("CloudEvent", "Any event of format: cloudevents, as the structured-mode "
                    "body; in binary mode the same attributes arrive as ce-* headers and "
                    "`data` as the body."),
}

NAMES: tuple[str, ...] = ("standard", "message.created", "message.edited", "webhook.disabled",
                          "cloudevents", "slack", "teams")
"""Every schema by name, in the order ``notifier schema --list`` shows them."""

_REF = re.compile(r"^#/\$defs/(.+)$")


def refs_in(node: Any) -> Iterator[str]:
    """The definition names ``node`` refers to, directly."""
    if isinstance(node, dict):
        found = _REF.match(str(node.get("$ref", "")))
        if found:
            yield found[1]
        for value in node.values():
            yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


def needed(root: Any) -> list[str]:
    """Every definition ``root`` refers to, directly or not, in the pool's order."""
    seen: set[str] = set()
    todo = list(refs_in(root))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(refs_in(DEFS[name]))
    return [name for name in DEFS if name in seen]


def schema(name: str) -> Schema:
    """The JSON Schema named ``name`` (one of NAMES), standing alone: ``$defs`` included."""
    if name in _ONE_OF:
        title, description = _TITLES[name]
        body: Schema = {"title": title, "description": description,
                        "oneOf": [ref(n) for n in _ONE_OF[name]]}
    elif name in _SINGLE:
        body = dict(DEFS[_SINGLE[name]])
    else:
        raise KeyError(name)
    return {"$schema": DRAFT, "$id": ID_PREFIX + name, **body,
            "$defs": {n: DEFS[n] for n in needed(body)}}


def render(document: Any) -> str:
    """``document`` as the files hold it: JSON, two-space indent, keys in built order."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def files() -> dict[str, str]:
    """Every published document by file name: what ``notifier schema --write`` writes."""
    from notifier.schema.asyncapi import asyncapi

    written = {f"{name}.json": render(schema(name)) for name in NAMES}
    written["asyncapi.json"] = render(asyncapi())
    return written
