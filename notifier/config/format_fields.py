"""The webhook keys that depend on its ``format``: rate limits, grouping, templates.

Called by ``schema`` for each webhook; pure apart from reading a ``template_file``.
A template is compiled here, so one that cannot compile is a ``notifier check`` problem
naming the webhook and the line, never a surprise at the first matching message.
"""

from __future__ import annotations

import os
import re
from typing import Any

from notifier.config.fields import Invalid, Reader, duration, text
from notifier.config.model import MAX_CONFIG_BYTES, Rate
from notifier.config.yaml import Path

__all__ = ["DEFAULT_RATES", "FORMAT_KEYS", "GROUPING_FORMATS", "format_settings", "rate"]

FORMAT_KEYS = ("rate_limit", "group_wait", "template", "template_file", "content_type")
DEFAULT_RATES = {"slack": Rate(1, 1.0), "teams": Rate(4, 1.0)}
"""What Slack (about 1 message a second per webhook) and Teams (about 4) allow."""
GROUPING_FORMATS = ("slack", "teams")
UNSIGNED_FORMATS = ("slack", "teams")

_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")
_PER_UNIT = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(\s*;.*)?")
_UNLIMITED = ("none", "unlimited", "off")


def rate(value: Any, shown: str) -> Rate | None:
    """``4/s``, ``100/m``, ``1/2s`` or ``none``: a Rate, or None for unlimited."""
    hint = f"must be a rate like 1/s, 4/s, 100/m or 10/30s, or none (got {shown})"
    if isinstance(value, str) and value.strip().lower() in _UNLIMITED:
        return None
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid(hint)
    count, unit = int(match[1]), match[2].lower()
    per = _PER_UNIT.get(unit)
    if per is None:
        try:
            per = duration()(unit, shown)
        except Invalid:
            raise Invalid(hint) from None
    if count < 1:
        raise Invalid(f"must allow at least 1 request (got {shown}); use none for no limit")
    return Rate(count, per)


def content_type(value: Any, shown: str) -> str:
    """A media type like ``application/json`` or ``text/plain; charset=utf-8``."""
    media = text(value, shown).strip()
    if not _MEDIA_TYPE.fullmatch(media) or "\r" in media or "\n" in media:
        raise Invalid(f"must be a media type like application/json (got {shown})")
    return media


def format_settings(r: Reader, m: dict[str, Any], path: Path, fmt: str) -> dict[str, Any]:
    """The Webhook fields that follow from ``format`` and the keys above."""
    settings: dict[str, Any] = {
        "rate_limit": r.value(m, path, "rate_limit", rate, DEFAULT_RATES.get(fmt)),
        "group_wait": r.value(m, path, "group_wait", duration(allow_zero=True), 0.0),
    }
    if settings["group_wait"] and fmt not in GROUPING_FORMATS:
        chat = ", ".join(GROUPING_FORMATS)
        r.problem((*path, "group_wait"), f"grouping is for chat formats ({chat}); "
                                         f"this webhook's format is {fmt}")
    if fmt in UNSIGNED_FORMATS and "secret" in m:
        r.problem((*path, "secret"), f"format {fmt} sends no signature (the service does "
                                     "not check one); remove secret")
    settings.update(_template(r, m, path, fmt))
    return settings


def _template(r: Reader, m: dict[str, Any], path: Path, fmt: str) -> dict[str, Any]:
    given = [key for key in ("template", "template_file") if key in m]
    if fmt != "template":
        for key in (*given, *(["content_type"] if "content_type" in m else [])):
            r.problem((*path, key), f"only applies to format: template (this webhook's "
                                    f"format is {fmt})")
        return {}
    if len(given) != 1:
        r.problem(path, "format: template needs exactly one of template (the text) or "
                        "template_file (a path)", at=(*path, given[-1] if given else "format"))
        return {}
    found = _source(r, m, path, given[0])
    if found is None:
        return {}
    source, name = found
    if not _compiles(r, (*path, given[0]), source, name):
        return {}
    return {"template": source, "template_name": name,
            "content_type": r.value(m, path, "content_type", content_type, "application/json")}


def _source(r: Reader, m: dict[str, Any], path: Path, key: str) -> tuple[str, str] | None:
    """The template text and the name messages use for it."""
    if key == "template":
        source = r.value(m, path, key, text, None)
        return None if source is None else (source, ".".join(map(str, (*path, key))))
    file = r.value(m, path, key, text, None)
    if file is None:
        return None
    full = os.path.join(os.path.dirname(os.path.abspath(r.file)), os.path.expanduser(file))
    try:
        with open(full, encoding="utf-8") as handle:
            source = handle.read(MAX_CONFIG_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        r.problem((*path, key), f"cannot read {file!r}: {reason}")
        return None
    if len(source) > MAX_CONFIG_BYTES:
        r.problem((*path, key), f"{file!r} is more than {MAX_CONFIG_BYTES:,} bytes, the "
                                "limit for a template")
        return None
    return source, file


def _compiles(r: Reader, where: Path, source: str, name: str) -> bool:
    from notifier.delivery.formats.template import TemplateSyntaxError, compile_template

    try:
        compile_template(source, name)
    except TemplateSyntaxError as exc:
        r.problem(where, f"the template does not compile: {name} line {exc.lineno}: "
                         f"{exc.message} (fix the template)")
        return False
    return True
