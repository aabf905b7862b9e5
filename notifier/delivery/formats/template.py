"""The ``template`` format: a user-written body, rendered by sandboxed Jinja2.

The template sees ``event`` (``type``, ``id``, ``rules``, ``timestamp``), ``message`` (the
Roomlio message as received), ``room`` and ``webhook_id``. Undefined names are errors,
not empty strings; a template cannot reach Python internals nor change the event it
renders, and runs within a render budget (``template_env``). A template that does not
compile, or that asks for more than the budget in its own text (``range(10**6)``), is a
config problem (``validate``, called by the config loader, compiles it); one that fails for
an event, budget included, raises DeliveryPermanentError, so the delivery is
dead-lettered with the reason and no half-rendered body is ever sent.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, Undefined, nodes

from notifier.config import Webhook
from notifier.config.fields import Invalid, text
from notifier.config.format_fields import FormatOptions
from notifier.delivery.formats.base import Body, Format
from notifier.delivery.formats.template_env import (
    MAX_OUTPUT,
    MAX_RANGE,
    BudgetEnvironment,
    BudgetExceeded,
    budget,
)
from notifier.errors import DeliveryPermanentError
from notifier.events import Delivery
from notifier.util.time import format_time

__all__ = ["FORMAT", "TemplateSyntaxError", "compile_template", "content_type", "context",
           "render", "validate"]

_SOURCES = ("template", "template_file")
_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(\s*;.*)?")


def _tojson(value: Any) -> str:
    """JSON text of ``value`` (non-ASCII kept), for building JSON bodies safely."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError, naming what is missing
    return json.dumps(value, ensure_ascii=False)


def _environment() -> BudgetEnvironment:
    env = BudgetEnvironment(undefined=StrictUndefined, autoescape=False,
                            keep_trailing_newline=True)
    env.add_filter("tojson", _tojson)  # Jinja's own escapes for HTML; ours is plain JSON
    return env


_ENV = _environment()


def compile_template(source: str, name: str) -> Template:
    """Compile ``source``; raise TemplateSyntaxError (with ``lineno``) when it is invalid
    or its own text asks for more than the render budget allows."""
    _static_budget(_ENV.parse(source))
    return _ENV.from_string(source, globals={"__name__": name})


def _static_budget(tree: nodes.Template) -> None:
    """What the budget refuses at every render, found in the text: a ``range`` or a
    repeated string whose numbers are written in it."""
    for call in tree.find_all(nodes.Call):
        args = [_constant(a) for a in call.args]
        if isinstance(call.node, nodes.Name) and call.node.name == "range" and args and all(
                isinstance(a, int) for a in args) and len(range(*args)) > MAX_RANGE:
            raise TemplateSyntaxError(f"range() of {len(range(*args)):,} numbers is over the "
                                      f"render budget's {MAX_RANGE:,}", call.lineno)
    for product in tree.find_all(nodes.Mul):
        sides = {type(v): v for v in (_constant(product.left), _constant(product.right))}
        text, times = sides.get(str), sides.get(int)
        if text is not None and times is not None and len(text) * times > MAX_OUTPUT:
            raise TemplateSyntaxError(f"a string repeated to {len(text) * times:,} characters "
                                      f"is over the render budget's {MAX_OUTPUT:,}",
                                      product.lineno)


def _constant(node: nodes.Node) -> Any:
    return node.value if isinstance(node, nodes.Const) else None


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
        text = _render(template, context(delivery))
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError,
            RecursionError) as exc:
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


def _render(template: Template, names: dict[str, Any]) -> str:
    """``template.render(names)`` within a fresh budget, its output capped as it grows."""
    parts: list[str] = []
    size = 0
    with budget():
        for part in template.generate(names):
            size += len(part)
            if size > MAX_OUTPUT:
                raise BudgetExceeded(f"the output is over the render budget's {MAX_OUTPUT:,} "
                                     "characters")
            parts.append(part)
    return "".join(parts)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def content_type(value: Any, shown: str) -> str:
    """A media type like ``application/json`` or ``text/plain; charset=utf-8``."""
    media = text(value, shown).strip()
    if not _MEDIA_TYPE.fullmatch(media) or "\r" in media or "\n" in media:
        raise Invalid(f"must be a media type like application/json (got {shown})")
    return media


def validate(options: FormatOptions) -> dict[str, Any]:
    """Exactly one of ``template``/``template_file``, compiled within the budget, and the
    ``content_type``: the Webhook fields they give ({} after a problem)."""
    given = [key for key in _SOURCES if options.given(key)]
    if len(given) != 1:
        options.problem(None, "format: template needs exactly one of template (the text) "
                              "or template_file (a path)",
                        at=given[-1] if given else "format")
        return {}
    key = given[0]
    found = _source(options, key)
    if found is None:
        return {}
    source, name = found
    try:
        compile_template(source, name)
    except TemplateSyntaxError as exc:
        options.problem(key, f"the template does not compile: {name} line {exc.lineno}: "
                             f"{exc.message} (fix the template)")
        return {}
    return {"template": source, "template_name": name,
            "content_type": options.value("content_type", content_type, "application/json")}


def _source(options: FormatOptions, key: str) -> tuple[str, str] | None:
    """The template text and the name messages use for it."""
    if key == "template_file":
        return options.read_file(key)
    source = options.value(key, text, None)
    return None if source is None else (source, options.label(key))


def _build(webhook: Webhook) -> Body:
    """The body function of a ``template`` webhook (its template compiled once)."""
    template = compile_template(webhook.template or "", webhook.template_name)

    def body(delivery: Delivery) -> bytes:
        return render(template, delivery, webhook=webhook.name,
                      content_type=webhook.content_type)

    return body


FORMAT = Format("template", _build, options=(*_SOURCES, "content_type"), check=validate)
"""A user-written body, signed like ``standard``; no default rate, no grouping."""
