"""The suite's body check: every body the notifier sends to a test receiver must validate
against the published schema of its format (``notifier.schema``), so the schema cannot
drift from what is sent.

conftest.py installs ``check`` as ``WebhookReceiver.default_body_check`` for every test and
fails the test when a body did not validate. Which schema applies is told by the request
itself: a CloudEvents content type or ``ce-*`` headers, else the body's shape (Slack
``blocks``, a Teams ``message``, a standard event's ``type``/``timestamp``/``data``). A body
of no known shape is an error too, unless the test is marked ``template_bodies`` (its
notifier sends format ``template``, whose body is the user's). Requests not sent by the
notifier (no ``roomlio-notifier/`` user agent: a test posting by hand) are not checked.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from notifier.schema import schema
from notifier.schema.definitions import DEFS
from notifier.testing import Received

__all__ = ["check", "claim", "validator"]

_OURS = "roomlio-notifier/"
_STANDARD_KEYS = frozenset({"type", "timestamp", "data"})


_BRANCHES = {
    ("standard", "message.created"): "MessageCreated",
    ("standard", "message.edited"): "MessageEdited",
    ("standard", "webhook.disabled"): "WebhookDisabled",
    ("cloudevents", "com.roomlio.message.created"): "CloudEventMessageCreated",
    ("cloudevents", "com.roomlio.message.edited"): "CloudEventMessageEdited",
    ("cloudevents", "com.roomlio.webhook.disabled"): "CloudEventWebhookDisabled",
}


@cache
def _definition(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": DEFS},
                                format_checker=FormatChecker())


@cache
def validator(name: str) -> Draft202012Validator:
    """The validator of the published schema ``name`` (built once)."""
    return Draft202012Validator(schema(name), format_checker=FormatChecker())


def _media(got: Received) -> str:
    return got.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _binary_event(got: Received) -> dict[str, Any]:
    """A binary-mode CloudEvent as the structured form its headers and body stand for."""
    attributes = {name[3:]: unquote(value) for name, value in got.headers.items()
                  if name.startswith("ce-")}
    return {**attributes, "datacontenttype": got.headers.get("content-type"),
            "data": got.json}


def claim(got: Received) -> tuple[str, Any] | None:
    """The schema a request claims to follow and the document to validate, or None."""
    if _media(got) == "application/cloudevents+json":
        return "cloudevents", got.json
    if "ce-specversion" in got.headers:
        return "cloudevents", _binary_event(got)
    doc = got.json
    if not isinstance(doc, dict):
        return None
    if "blocks" in doc:
        return "slack", doc
    if doc.get("type") == "message" and "attachments" in doc:
        return "teams", doc
    if _STANDARD_KEYS & doc.keys():
        return "standard", doc
    return None


def check(got: Received, *, template_bodies: bool = False) -> str | None:
    """What is wrong with the body of ``got`` against its format's schema (None: nothing)."""
    if not got.headers.get("user-agent", "").startswith(_OURS):
        return None
    claimed = claim(got)
    if claimed is None:
        return None if template_bodies else (
            f"a body of no known format ({_media(got) or 'no content type'}): "
            f"{got.body[:200]!r}; mark the test template_bodies if it sends format template")
    name, document = claimed
    kind = document.get("type") if isinstance(document, dict) else None
    branch = _BRANCHES.get((name, kind))  # the event type's own schema: a precise message
    found = validator(name) if branch is None else _definition(branch)
    error = best_match(found.iter_errors(document))
    if error is None:
        return None
    where = "/".join(map(str, error.absolute_path)) or "(the body)"
    return (f"does not match schema {name!r} ({branch or 'any type'}) at {where}: "
            f"{error.message[:300]}")
