"""``notifier demo --format slack|teams|template``: the demo rules, re-targeted at a format.

The bundled rules are rewritten for the format (unsigned formats refuse a secret, so their
webhooks lose the secret; ``template`` gets a small CRM-style template), and each
request the receiver accepts is printed in full, as the service would see it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import yaml

from notifier.delivery.formats import FORMATS
from notifier.testing.receiver import Received

__all__ = ["DEMO_FORMATS", "DEMO_TEMPLATE", "retarget", "show"]

DEMO_FORMATS = tuple(FORMATS)
DEMO_TEMPLATE = """\
{
  "source": "roomlio",
  "kind": "{{ event.type }}",
  "rules": {{ event.rules | tojson }},
  "room": {{ room | tojson }},
  "author": {{ (message.first ~ " " ~ message.last) | trim | tojson }},
  "text": {{ message.body | tojson }},
  "at": "{{ message.createdAt }}"
}
"""


def retarget(rules_text: str, fmt: str) -> str:
    """The demo rules with every webhook switched to ``fmt``."""
    document: dict[str, Any] = yaml.safe_load(rules_text)
    for hook in document["webhooks"].values():
        hook["format"] = fmt
        if not FORMATS[fmt].signed:
            hook.pop("secret", None)
        if fmt == "template":
            hook["template"] = DEMO_TEMPLATE
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def show(got: Received, emit: Callable[[str], None]) -> None:
    """Print one accepted request: where it went, its signature state, its body."""
    signed = {True: "signature ok", False: "SIGNATURE FAILED", None: "unsigned"}[got.verified]
    emit(f"--- {time.strftime('%H:%M:%S')}  {got.path}  "
         f"{got.headers.get('content-type', '')}  {signed}")
    if got.json is not None:
        emit(json.dumps(got.json, indent=2, ensure_ascii=False))
    else:
        emit(got.body.decode("utf-8", "replace"))
