"""Templates compiled and rendered by sandboxed Jinja2, within the render budget.

The half of the ``template`` format that needs Jinja2: ``template`` imports this module when
a webhook of that format is checked or built, so a config without one never loads Jinja2
(bench/RESULTS.md, "Memory at 10,000 rooms, again").
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, Undefined, nodes

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

__all__ = ["TemplateSyntaxError", "compile_template", "context", "render"]


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
