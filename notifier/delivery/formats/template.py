"""The ``template`` format: a user-written body, rendered by sandboxed Jinja2.

The template sees ``event`` (``type``, ``id``, ``rules``, ``timestamp``), ``message`` (the
Roomlio message as received), ``room`` and ``webhook_id``. Undefined names are errors,
not empty strings; a template cannot reach Python internals nor change the event it
renders, and runs within a render budget (``template_env``). A template that does not
compile, or that asks for more than the budget in its own text (``range(10**6)``), is a
config problem (``validate``, called by the config loader, compiles it); one that fails for
an event, budget included, raises DeliveryPermanentError, so the delivery is
dead-lettered with the reason and no half-rendered body is ever sent.

Compiling and rendering live in ``template_render``, imported by the first ``template``
webhook checked or built: a config without one never loads Jinja2.
"""

from __future__ import annotations

import re
from typing import Any

from notifier.config import Webhook
from notifier.config.fields import Invalid, text
from notifier.config.format_fields import FormatOptions
from notifier.delivery.formats.base import Body, Format
from notifier.events import Delivery

__all__ = ["FORMAT", "content_type", "validate"]

_SOURCES = ("template", "template_file")
_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(\s*;.*)?")


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
    from notifier.delivery.formats.template_render import TemplateSyntaxError, compile_template

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
    from notifier.delivery.formats.template_render import compile_template, render

    template = compile_template(webhook.template or "", webhook.template_name)

    def body(delivery: Delivery) -> bytes:
        return render(template, delivery, webhook=webhook.name,
                      content_type=webhook.content_type)

    return body


FORMAT = Format("template", _build, options=(*_SOURCES, "content_type"), check=validate)
"""A user-written body, signed like ``standard``; no default rate, no grouping."""
