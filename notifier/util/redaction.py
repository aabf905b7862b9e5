"""Finding a known secret in text however it is spelled there, and when only part of it is.

Libraries and remote parties rarely echo a secret exactly as the config holds it: aiohttp
and yarl print a webhook URL decoded (``%2F`` becomes ``/``) or re-encoded, hosts come
back lowercased, percent escapes in lowercase hex, query values ``+``-encoded; and an error
text cut to a length upstream (before any redaction could run) may end half-way through a
key. So each secret is searched for in every such spelling, case-insensitively, and a long
token-like secret also by its first or last ``FRAGMENT`` or more characters.

Which texts of a webhook are secret (``webhook_secrets``) is decided here too, once, for
the logs and for delivery error texts alike.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit

from yarl import URL

__all__ = ["FRAGMENT", "MIN_SECRET", "TOKEN", "Redactor", "SecretMatcher", "spellings",
           "webhook_secrets"]

#: A run of this many characters of a token-like secret counts as the secret.
FRAGMENT = 8
#: Shorter values would redact ordinary words.
MIN_SECRET = 4
#: Secrets this long without "/" or blanks are tokens: their fragments are masked too
#: (and a URL path segment this long is taken for a token wherever it shows up).
TOKEN = 16
_BLANK = re.compile(r"\s")
_LONGEST = 512  # fragments of longer values would nest the pattern too deeply


def spellings(value: str) -> set[str]:
    """``value`` as it may appear in text: decoded, percent-encoded, as yarl prints it."""
    found = {value, unquote(value), unquote_plus(value)}
    for form in list(found):
        found.update((quote(form, safe=""), quote(form, safe="/:@"), quote_plus(form, safe="")))
    found.update(quote(form, safe="") for form in list(found))  # encoded twice
    if "://" in value:
        try:
            url = URL(value)
            found.update((str(url), url.human_repr()))
        except ValueError:
            pass
    return {form for form in found if form}


def webhook_secrets(name: str, url: str, keys: Iterable[bytes], headers: Mapping[str, str],
                    *, segment: int = TOKEN) -> dict[str, str]:
    """Every secret text of webhook ``name``, mapped to the name shown in its place: its
    URL and the parts of it that carry tokens, each signing key as base64 (padded,
    unpadded, ``whsec_``-prefixed: all are accepted in the config), each header value
    and the credential after its scheme (``Bearer <token>``). A path segment counts
    when at least ``segment`` characters long (shorter ones are mostly words)."""
    where = f"webhooks.{name}"
    found = dict.fromkeys(_url_parts(url, segment), f"{where}.url")
    for key in keys:
        encoded = base64.b64encode(key).decode()
        found.update(dict.fromkeys((encoded, encoded.rstrip("="), "whsec_" + encoded),
                                   f"{where}.secret"))
    for header, value in headers.items():
        found.update(dict.fromkeys((value, *value.split()[1:]), f"{where}.headers.{header}"))
    return {value: shown for value, shown in found.items() if len(value) >= MIN_SECRET}


def _url_parts(url: str, segment: int) -> set[str]:
    """``url`` and its token-bearing parts (credentials, query values, the path and its
    long segments), raw and percent-decoded, and as yarl prints them."""
    parts = urlsplit(url)
    found = {url, unquote(url), parts.username or "", parts.password or ""}
    try:
        parsed = URL(url)
        found |= {str(parsed), parsed.human_repr(), parsed.raw_path, parsed.path}
    except ValueError:
        pass  # the client cannot send to it either; the raw spellings remain
    if parts.path.strip("/"):  # Slack-style URLs keep the token in the path
        found |= {parts.path, unquote(parts.path)}
    pieces = [*parts.path.split("/"), *unquote(parts.path).split("/")]
    found.update(piece for piece in (*pieces, *map(unquote, pieces)) if len(piece) >= segment)
    for _, value in parse_qsl(parts.query):
        found |= {value, unquote(value)}
    return {text for text in found if text.strip("/")}


def _fragments(value: str) -> list[str]:
    """The prefixes and suffixes of a token-like ``value`` of at least FRAGMENT characters."""
    if not TOKEN <= len(value) <= _LONGEST or _BLANK.search(value) or "://" in value \
            or value[0] == "/":
        return []  # URLs and paths share prefixes with harmless text; their tokens are listed
    ends = range(FRAGMENT, len(value))
    return [value[:n] for n in ends] + [value[-n:] for n in ends]


class SecretMatcher:
    """Replaces every spelling (and long fragment) of known secrets by ``[their name]``."""

    def __init__(self, secrets: Mapping[str, str], minimum: int) -> None:
        names: dict[str, str] = {}
        spelled: set[str] = set()
        # Longer secrets first: a form two secrets share is named after the longer one.
        for value, name in sorted(secrets.items(), key=lambda item: -len(item[0])):
            forms = {form for form in spellings(value) if len(form) >= minimum}
            spelled.update(form.lower() for form in forms)
            for form in (*forms, *_fragments(value)):
                names.setdefault(form.lower(), name)
        # One pass; at each position the longest form wins, so a URL is named before a part.
        self._pattern = re.compile(_trie(names), re.IGNORECASE) if names else None
        self._names = names
        #: Every whole spelling, lower-cased (fragments left out).
        self.forms = frozenset(form for form in names if form in spelled)

    def redact(self, text: str) -> str:
        """``text`` with each secret's spellings replaced by its name in brackets."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._name, text)

    def _name(self, match: re.Match[str]) -> str:
        return f"[{self._names.get(match.group().lower(), 'secret')}]"


def _trie(forms: Iterable[str]) -> str:
    """A regex matching any of ``forms`` (longest first), shaped as a trie: at each
    position it branches on the next character instead of trying every form in turn."""
    root: dict[str, Any] = {}
    for form in forms:
        node = root
        for char in form:
            node = node.setdefault(char, {})
        node[""] = {}
    return _node(root)


def _node(node: dict[str, Any]) -> str:
    literal = ""
    while len(node) == 1 and "" not in node:  # a chain of single characters: no group
        char, node = next(iter(node.items()))
        literal += re.escape(char)
    branches = [re.escape(char) + _node(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return literal
    group = "(?:" + "|".join(branches) + ")"
    return literal + (group + "?" if "" in node else group)


#: Credential shapes masked even when the config does not name them.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+(\s+[^'\"\s,}]+)?"),
     r"\1[REDACTED]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}"), r"\1 [REDACTED]"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_[REDACTED]"),
    (re.compile(r"whsk_[A-Za-z0-9+/=]+"), "whsk_[REDACTED]"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@"), r"\1[REDACTED]@"),
)


class Redactor:
    """Masks the known ``secrets`` (any spelling, long fragments) and every credential shape
    (``Authorization`` values, bearer tokens, ``whsec_``/``whsk_`` keys, URL passwords):
    what logs, error texts and the status page show of remote or secret-bearing text."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = SecretMatcher(secrets, MIN_SECRET)

    def redact(self, text: str) -> str:
        """``text`` with every known secret and credential shape masked."""
        text = self._secrets.redact(text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text
