"""The ``webhooks`` section of rules.yaml: each webhook's url (checked as the HTTP client will
read it), secrets, format, headers, and the ``delivery`` settings it overrides.

Pure, like ``schema``, which calls ``webhooks`` once the ``delivery`` defaults are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from notifier.config.delivery_fields import check_breaker, check_ordered, resolve_retry
from notifier.config.fields import MISSING, Invalid, Reader, choice, describe, is_hidden
from notifier.config.format_fields import FormatRules, format_keys, format_settings
from notifier.config.model import DeliverySettings, Webhook
from notifier.config.settings import declared, table
from notifier.config.yaml import Path
from notifier.signing import SignatureError, decode_secret
from notifier.util.netguard import connect_host, private_target

__all__ = ["WEBHOOK_FIELDS", "WEBHOOK_KEYS", "webhooks"]

_WEBHOOK_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature",
                               "content-length", "host"})
_WEBHOOK = declared(Webhook)
_WEBHOOK_CONV = table(Webhook)
#: The ``delivery`` keys a webhook may override (not those about the process).
WEBHOOK_FIELDS = {key: conv for key, conv in table(DeliverySettings).items() if key in _WEBHOOK}
WEBHOOK_KEYS = ("url", "secret", "format", "headers", *WEBHOOK_FIELDS)
"""The keys of every webhook; each format adds its own (``format_keys``)."""


def _secret_key(value: Any, shown: str) -> bytes:
    if not isinstance(value, str):
        raise Invalid(f"must be a string like whsec_<base64> or whsk_<base64> (got {shown})")
    try:
        return decode_secret(value.strip())
    except SignatureError as exc:  # its message never contains the secret
        raise Invalid(f"{shown} is not a valid webhook secret: {exc}") from None


def _header_value(value: Any, shown: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string; put numbers in quotes (got {shown})")
    if "\r" in value or "\n" in value:
        raise Invalid(f"{shown} contains a line break; header values must be one line")
    return value


def webhooks(r: Reader, value: Any, defaults: DeliverySettings,
              formats: Mapping[str, FormatRules]) -> dict[str, Webhook]:
    m = r.mapping(value, ("webhooks",))
    if m is None:
        return {}
    if not m:
        r.problem(("webhooks",), "must define at least one webhook, like crm: {url: https://...}")
    hooks = {}
    for name, spec in m.items():
        if not _WEBHOOK_NAME.fullmatch(name):
            r.problem(("webhooks", name), f"invalid webhook name {describe(name)}; "
                                          "use letters, digits, '_', '.' and '-'")
        elif (hook := _webhook(r, name, spec, defaults, formats)) is not None:
            hooks[name] = hook
    return hooks


def _webhook(r: Reader, name: str, spec: Any, defaults: DeliverySettings,
             formats: Mapping[str, FormatRules]) -> Webhook | None:
    path: Path = ("webhooks", name)
    m = r.mapping(spec, path, (*WEBHOOK_KEYS, *format_keys(formats)), required=("url",))
    if m is None:
        return None
    settings = {key: getattr(defaults, key) for key in WEBHOOK_FIELDS}
    settings.update(r.fields(m, path, WEBHOOK_FIELDS))
    resolve_retry(r, m, path, settings, default=defaults.retry_schedule)
    check_breaker(r, m, path, settings)
    url = r.value(m, path, "url", _WEBHOOK_CONV["url"], "")
    if url:
        _check_target(r, url, (*path, "url"), allow_private=settings["allow_private_urls"])
    fmt = r.value(m, path, "format", choice(list(formats), "format"), _WEBHOOK["format"].default)
    headers = _headers(r, m.get("headers", MISSING), (*path, "headers"))
    if url and urlsplit(url).username is not None and any(
            h.lower() == "authorization" for h in headers):
        r.problem((*path, "headers"), "the url carries credentials and headers sets "
                                      "Authorization too; keep only one of them")
    formatting = format_settings(r, m, path, fmt, formats)
    check_ordered(r, path, settings, formatting["group_wait"])
    return Webhook(
        name=name,
        url=url,
        secrets=r.values(m, path, "secret", _secret_key) or (),
        format=fmt,
        headers=headers,
        **settings,
        **formatting,
    )


def _check_target(r: Reader, url: str, path: Path, *, allow_private: bool) -> None:
    """The host is judged as the HTTP client will read it (IDNA-folded), not as written."""
    if connect_host(url) is None:
        r.problem(path, "the HTTP client cannot read this url's host; look for invisible "
                        "or unusual characters in it")
        return
    host = None if allow_private else private_target(url)
    if host is not None:
        where = "" if is_hidden(r.show(url, path)) else f" ({host})"
        r.problem(path, f"url points to a private address{where}; "
                        "set allow_private_urls: true to allow it")


def _headers(r: Reader, value: Any, path: Path) -> dict[str, str]:
    m = r.mapping(value, path)
    headers: dict[str, str] = {}
    if m is None:
        return headers
    for name in m:
        if not _HEADER_NAME.fullmatch(name):
            r.problem((*path, name), f"invalid header name {describe(name)}; "
                                     "use letters, digits and '-'")
        elif name.lower() in _RESERVED_HEADERS:
            r.problem((*path, name), f"the notifier sets {name} itself; remove it")
        elif (header := r.value(m, path, name, _header_value, None)) is not None:
            headers[name] = header
    return headers
