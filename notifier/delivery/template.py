"""The ``template`` format: a user-written body, rendered by sandboxed Jinja2.

The template sees ``event`` (``type``, ``id``, ``rules``, ``timestamp``), ``message`` (the
Roomlio message as received), ``room`` and ``webhook_id``. Undefined names are errors,
not empty strings, and a template cannot reach Python internals (``SandboxedEnvironment``).
A template that does not compile is a config problem (``compile_template`` is called by
the config loader); one that fails for an event raises DeliveryPermanentError, so the
delivery is dead-lettered with the reason and no half-rendered body is ever sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from notifier.config import Webhook
from notifier.delivery.formats import Payload
from notifier.errors import DeliveryPermanentError
from notifier.events import Delivery
from notifier.timeutil import format_time

__all__ = ["TemplateSyntaxError", "compile_template", "context", "formatter", "render"]


def _tojson(value: Any) -> str:
    """JSON text of ``value`` (non-ASCII kept), for building JSON bodies safely."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError, naming what is missing
    return json.dumps(value, ensure_ascii=False)


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                               keep_trailing_newline=True)
    env.filters["tojson"] = _tojson  # Jinja's own escapes for HTML; ours is plain JSON
    return env


_ENV = _environment()


def compile_template(source: str, name: str) -> Template:
    """Compile ``source``; raise TemplateSyntaxError (with ``lineno``) when it is invalid."""
    return _ENV.from_string(source, globals={"__name__": name})


def context(delivery: Delivery) -> dict[str, Any]:
    """The names a template may use for one delivery."""
    event = delivery.event
    return {
        "event": {"type": event.kind, "id": event.id, "rules": list(delivery.rules),
                  "timestamp": format_time(event.detected_at)},
        "message": dict(event.message),
        "room": event.room,
        "webhook_id": delivery.id,
    }


def render(template: Template, delivery: Delivery, *, webhook: str,
           content_type: str) -> bytes:
    """The body for ``delivery``; DeliveryPermanentError naming the reason if it fails."""
    try:
        text = template.render(context(delivery))
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        raise DeliveryPermanentError(
            f"webhook {webhook}: the template failed to render: {type(exc).__name__}: {exc}"
        ) from None
    if _is_json(content_type):
        try:
            json.loads(text)
        except ValueError as exc:
            raise DeliveryPermanentError(
                f"webhook {webhook}: the template rendered invalid JSON ({exc}); "
                "use the tojson filter for message values") from None
    return text.encode()


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def formatter(webhook: Webhook) -> Callable[[Delivery], Payload]:
    """The payload function of a ``template`` webhook (its template compiled once)."""
    template = compile_template(webhook.template or "", webhook.template_name)

    def format_delivery(delivery: Delivery) -> Payload:
        body = render(template, delivery, webhook=webhook.name,
                      content_type=webhook.content_type)
        return Payload(body, content_type=webhook.content_type, signed=True)

    return format_delivery
